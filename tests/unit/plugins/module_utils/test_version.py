# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""module_utils/version.py: where a service reports its version, read from real reply shapes."""

from __future__ import annotations

import json

import pytest

from ansible_collections.hotswap.deploy.plugins.module_utils.common import HotswapError
from ansible_collections.hotswap.deploy.plugins.module_utils.version import build_version_source, default_version

# Shapes the real services of tests/integration/test_real_services.py answer with.
NODE_EXPORTER_METRICS = (
    '# HELP node_exporter_build_info A metric with a constant \'1\' value ...\n'
    '# TYPE node_exporter_build_info gauge\n'
    'node_exporter_build_info{branch="debian/sid",goarch="amd64",goos="linux",goversion="go1.19.8",'
    'revision="1.5.0-1+b6",tags="netgo osusergo static_build",version="1.5.0"} 1\n')
PUSHGATEWAY_STATUS = json.dumps({'status': 'success', 'data': {'build_information': {
    'branch': 'debian/sid', 'version': '1.5.1', 'goVersion': 'go1.19.8'}, 'flags': {}}})
NODE_REGEX = r'node_exporter_build_info\{[^}]*version="([^"]+)"'


class Runner(object):
    def __init__(self, rc=0, out='', err=''):
        self.answer = (rc, out, err)
        self.calls = []

    def __call__(self, argv):
        self.calls.append(argv)
        return self.answer


def test_regex_reads_a_prometheus_build_info_line():
    assert build_version_source(version_regex=NODE_REGEX).read(NODE_EXPORTER_METRICS) == ('1.5.0', None)


def test_query_reads_a_nested_json_field():
    source = build_version_source(version_query='data.build_information.version')
    assert source.read(PUSHGATEWAY_STATUS) == ('1.5.1', None)


def test_header_is_read_whatever_its_case():
    source = build_version_source(version_header='X-App-Version')
    assert source.read('<html>', headers={'x-app-version': ' 2.1.0 '}) == ('2.1.0', None)
    version, problem = source.read('<html>', headers={})
    assert version is None and 'no X-App-Version header' in problem


def test_command_output_with_a_regex_reads_the_file_not_the_reply():
    runner = Runner(out='', err='node_exporter, version 1.5.0 (branch: debian/sid)\n')
    source = build_version_source(version_command='/opt/n/current/n --version', version_regex=r'version (\S+)')
    assert source.read('ignored body', run_command=runner) == ('1.5.0', None)
    assert runner.calls == [['/opt/n/current/n', '--version']]


def test_command_that_fails_is_a_problem_not_a_version():
    source = build_version_source(version_command='false')
    version, problem = source.read('', run_command=Runner(rc=1, err='boom'))
    assert version is None and 'rc 1' in problem and 'boom' in problem


def test_without_a_source_an_html_page_is_not_a_version():
    version, problem = default_version('<!DOCTYPE html>\n<html><head><title>Node Exporter</title></head></html>')
    assert version is None
    assert 'version_regex' in problem and 'check_version: false' in problem
    assert default_version('{"version": "1.0.0", "status": "ok"}') == ('1.0.0', None)
    assert default_version('2.0.0\n') == ('2.0.0', None)


def test_regex_that_does_not_match_says_so():
    version, problem = build_version_source(version_regex=NODE_REGEX).read('nothing here')
    assert version is None and 'does not match the body' in problem


def test_query_on_a_body_that_is_not_json():
    version, problem = build_version_source(version_query='data.version').read('<html>')
    assert version is None and 'not JSON' in problem


@pytest.mark.parametrize('options,words', [
    (dict(version_query='a.b', version_regex='v=(.*)'), ['both set', 'Give one']),
    (dict(version_regex='version=\\S+'), ['no capture group', 'parentheses']),
    (dict(version_regex='version=('), ['not a valid regular expression']),
    (dict(version_query='data.[version'), ['not a valid JMESPath expression']),
    (dict(version_header='X-Version', version_query='a'), ['cannot be combined']),
    (dict(version_header='X Version'), ['not a valid header name']),
    (dict(version_command='app "--version'), ['cannot be split']),
])
def test_bad_options_are_refused_with_the_fix(options, words):
    with pytest.raises(HotswapError) as err:
        build_version_source(**options)
    for word in words:
        assert word in err.value.msg


def test_empty_options_mean_the_default_source():
    assert build_version_source(version_query='', version_regex=None, version_header='  ').is_default
