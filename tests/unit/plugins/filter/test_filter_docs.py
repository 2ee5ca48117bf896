# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""Every filter a FilterModule exposes has its <name>.yml beside it (ansible-doc reads filter docs from there), named
as the filter, with the function's arguments as its options, in order; and every .yml documents a filter."""

from __future__ import annotations

import glob
import importlib
import inspect
import os

import pytest
import yaml

FILTER_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', '..', '..', 'plugins', 'filter')
MODULES = sorted(os.path.splitext(os.path.basename(p))[0] for p in glob.glob(os.path.join(FILTER_DIR, '*.py'))
                 if not os.path.basename(p).startswith('_'))


def exposed():
    """``{filter name: (module name, function)}`` of every FilterModule."""
    out = {}
    for name in MODULES:
        module = importlib.import_module('ansible_collections.hotswap.deploy.plugins.filter.' + name)
        for filter_name, func in module.FilterModule().filters().items():
            assert filter_name not in out, '%s is exposed by %s and %s' % (filter_name, out[filter_name][0], name)
            out[filter_name] = (name, func)
    return out


FILTERS = exposed()


def unwrapped(func):
    """The function a decorator without functools.wraps wrapped (service.py's _filter_error): the one of the same
    name its closure holds."""
    for cell in getattr(func, '__closure__', None) or ():
        inner = cell.cell_contents
        if callable(inner) and getattr(inner, '__name__', None) == func.__name__ and inner is not func:
            return unwrapped(inner)
    return func


def doc(filter_name):
    path = os.path.join(FILTER_DIR, filter_name + '.yml')
    assert os.path.isfile(path), '%s has no %s.yml' % (filter_name, filter_name)
    with open(path) as f:
        return yaml.safe_load(f)


def test_the_canary_filters_are_found():
    assert {'canary_metric_sets', 'canary_instances', 'canary_baseline_hosts', 'canary_host_verdict',
            'canary_batch_verdict', 'canary_rolled_back', 'rollback_check_from_deploy'} <= set(FILTERS)


def test_every_yml_documents_an_exposed_filter():
    ymls = sorted(os.path.splitext(os.path.basename(p))[0] for p in glob.glob(os.path.join(FILTER_DIR, '*.yml')))
    assert ymls == sorted(FILTERS)


@pytest.mark.parametrize('filter_name', sorted(FILTERS))
def test_the_doc_is_named_as_the_filter_and_has_examples_and_return(filter_name):
    d = doc(filter_name)
    assert d['DOCUMENTATION']['name'] == filter_name
    assert d.get('EXAMPLES') and filter_name in d['EXAMPLES']
    assert '_value' in (d.get('RETURN') or {})


@pytest.mark.parametrize('filter_name', sorted(FILTERS))
def test_the_documented_options_are_the_arguments_in_order(filter_name):
    func = unwrapped(FILTERS[filter_name][1])
    params = [p for p in inspect.signature(func).parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    documentation = doc(filter_name)['DOCUMENTATION']
    options = documentation['options']
    assert '_input' in options and options['_input'].get('required') is True
    assert list(options)[1:] == [p.name for p in params[1:]]
    positional = documentation.get('positional')
    if positional:
        assert [p.strip() for p in positional.split(',')] == [p.name for p in params[1:len(positional.split(',')) + 1]]
    for p in params[1:]:
        option = options[p.name]
        if p.default is p.empty:
            assert option.get('required') is True, '%s: %s has no default' % (filter_name, p.name)
        else:
            assert not option.get('required'), '%s: %s has a default' % (filter_name, p.name)
