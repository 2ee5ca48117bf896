# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""Sphinx configuration of the HTML docs site (`make docs`, scripts/build-docs.sh).

Started from what `antsibull-docs sphinx-init` writes, without intersphinx and without any link to,
or anything loaded from, an outside host: the site is built offline and works from file://.
The source tree (build/docsite/rst) is the RST that `antsibull-docs collection` writes for the
modules, plugins and roles, this directory's index.rst, and the Markdown guides of docs/ under
guides/ (with the pages they link to under project/), rendered by myst-parser.
"""

from __future__ import annotations

project = 'hotswap.deploy'
copyright = 'hotswap.deploy developers'  # pylint: disable=redefined-builtin
author = 'hotswap.deploy developers'

title = 'hotswap.deploy documentation'
html_short_title = 'hotswap.deploy'
html_title = 'hotswap.deploy documentation'

extensions = ['sphinx_antsibull_ext', 'myst_parser']
source_suffix = {'.rst': 'restructuredtext', '.md': 'markdown'}
root_doc = 'index'

pygments_style = 'ansible'
# Code blocks say their language (antsibull-docs' examples are yaml+jinja); one without (a diagram, a
# directory tree in a guide) is shown as it is, not lexed as YAML.
highlight_language = 'none'

html_theme = 'sphinx_ansible_theme'
html_theme_options = {
    'display_version': False,
    # The theme's extra navigation and ads are for Ansible's own docs site; none here.
    'show_extranav': False,
    'show_rtd_ethical_ads': False,
}
# _templates/extrabody.html: the theme's logo link points at this site's index instead of '/'.
templates_path = ['_templates']
html_show_sphinx = False
html_show_sourcelink = False
html_copy_source = False
html_use_index = False
html_domain_indices = False

default_role = 'any'
nitpicky = True
# antsibull-docs links some words to Ansible's own docs (ansible.builtin modules, "action plugins", the
# common return values, core's config and environment variables), which the site does not hold: without
# intersphinx (no network) those references stay plain text. Every other broken reference fails the build.
nitpick_ignore_regex = [
    ('ref', r'ansible_collections\.(ansible|community)\..*'),
    ('ref', r'(action_plugins|callback_plugins|common_return_values|ansible_configuration_settings)'),
    ('envvar', r'ANSIBLE_.*'),
]

# Links between the Markdown guides (foo.md#some-heading) resolve to the built pages: heading anchors
# as GitHub makes them.
myst_heading_anchors = 6
