# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""host_deploy, release_switch and blue_green_deploy are action-only (validate-modules cannot compare their docs with a spec):
the documented settings are the ones the actions validate, with the same types, defaults and choices."""

from __future__ import annotations

import importlib

import pytest
import yaml

from core_compat import import_controller


@pytest.mark.parametrize('name', ['host_deploy', 'release_switch', 'blue_green_deploy'])
def test_documented_settings_are_the_spec(name):
    action = import_controller('ansible_collections.hotswap.deploy.plugins.action.' + name)
    module = importlib.import_module('ansible_collections.hotswap.deploy.plugins.modules.' + name)
    docs = yaml.safe_load(module.DOCUMENTATION)['options']
    assert set(docs) == set(action.ARGS_SPEC)
    documented = docs['settings']['suboptions']
    spec = action.SETTINGS_SPEC
    assert set(documented) == set(spec)
    for key, opt in spec.items():
        doc = documented[key]
        assert doc['type'] == opt['type'], key
        assert doc.get('required', False) == opt.get('required', False), key
        assert doc.get('default') == opt.get('default'), key
        assert doc.get('choices') == opt.get('choices'), key
        assert doc.get('elements') == opt.get('elements'), key
