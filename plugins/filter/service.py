# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""Service settings for the roles and playbooks: the logic is module_utils/service.py."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.hotswap.deploy.plugins.module_utils.common import HotswapError
from ansible_collections.hotswap.deploy.plugins.module_utils import service


def _filter_error(func):
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except HotswapError as exc:
            raise AnsibleFilterError(exc.msg)
    wrapper.__name__ = func.__name__
    wrapper.__doc__ = func.__doc__
    return wrapper


@_filter_error
def service_settings(given, app, listen_port=8080, strict=False):
    """Every service setting of ``given`` (a dict or a host's variables), validated and defaulted."""
    return service.service_settings(given, app, listen_port=listen_port, strict=strict)


@_filter_error
def service_directives(settings):
    """The [Service] lines of a unit that the settings decide."""
    return service.service_directives(settings)


@_filter_error
def service_exec_args(settings, **values):
    """service_args with its {port}, {address}, {pid_file}, {slot}, {ready_timeout} placeholders filled."""
    return service.exec_args(settings, **values)


class FilterModule(object):
    def filters(self):
        return {
            'service_settings': service_settings,
            'service_directives': service_directives,
            'service_exec_args': service_exec_args,
        }
