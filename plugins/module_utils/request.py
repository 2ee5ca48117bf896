# -*- coding: utf-8 -*-
# Copyright: hotswap.deploy contributors
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""A GET that follows redirects but gives credentials only to the origin they were given for.

``open_url`` follows redirects with every request header, so a probe or a download redirected
to another host would hand it the ``Authorization`` header. Here ``open_url`` is called with
``follow_redirects='none'`` and each redirect is followed by this loop, as curl and requests do:

- a redirect to the same origin (scheme, host and port) keeps the headers and the credentials;
- a redirect to another origin -- another host, another port, or https -> http -- is followed
  without any header the caller gave (``Authorization``, ``Cookie``, ``Proxy-Authorization``,
  tokens in custom headers: every one of them) and without the user name and password; they
  stay dropped for the rest of the chain, even if it comes back;
- at most MAX_REDIRECTS redirects, and only to http:// and https:// URLs.

Following (not refusing) is what an artifact server that hands out a signed storage URL needs:
that URL carries its own credentials and must not get the server's.
"""

from __future__ import annotations

import http.client
import urllib.error
from urllib.parse import urljoin, urlsplit

from ansible_collections.hotswap.deploy.plugins.module_utils.redact import mask_url

MAX_REDIRECTS = 10
REDIRECT_CODES = (301, 302, 303, 307, 308)
DEFAULT_PORTS = {'http': 80, 'https': 443}


def open_url(*args, **kwargs):
    """``ansible.module_utils.urls.open_url``, imported on the first request: the import costs a module run about
    0.14 s of CPU on the host (it imports cryptography), and most module runs send no request."""
    from ansible.module_utils.urls import open_url as urls_open_url
    return urls_open_url(*args, **kwargs)


def request_errors():
    """What a failed request raises besides ``HTTPError``, for an except clause (evaluated only on an error)."""
    from ansible.module_utils.urls import ConnectionError as UrlsConnectionError
    return (OSError, http.client.HTTPException, UrlsConnectionError, ValueError)


class RedirectError(urllib.error.URLError):
    """A redirect that is not followed; ``reason`` says why (the URLs in it are masked)."""


def origin(url):
    """``(scheme, host, port)`` of an absolute http(s) URL, the port made explicit."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or '').lower(), parts.port or DEFAULT_PORTS.get(scheme)


def open_url_same_origin(url, headers=None, url_username=None, url_password=None, force_basic_auth=False,
                         max_redirects=MAX_REDIRECTS, **kwargs):
    """GET ``url`` with ``open_url`` (``kwargs`` pass through), following redirects as described above.

    Returns the final response. Like ``open_url``, raises ``urllib.error.HTTPError`` for a final
    4xx/5xx (and for a 3xx without a Location); raises RedirectError for a redirect it does not follow.
    """
    current = url
    start = origin(url)
    credentials = dict(headers=dict(headers or {}), url_username=url_username, url_password=url_password,
                       force_basic_auth=force_basic_auth)
    followed = 0
    while True:
        try:
            return open_url(current, method='GET', follow_redirects='none', use_netrc=False, **dict(kwargs, **credentials))
        except urllib.error.HTTPError as err:
            location = err.headers.get('Location') if err.code in REDIRECT_CODES and err.headers is not None else None
            if not location:
                raise
            err.close()
        target = urljoin(current, location.strip().replace(' ', '%20'))
        try:
            target_origin = origin(target)
        except ValueError as exc:
            raise RedirectError('redirected to an unparsable URL %s (%s)' % (mask_url(target), exc))
        if target_origin[0] not in DEFAULT_PORTS or not target_origin[1]:
            raise RedirectError('redirected to %s, which is not an http:// or https:// URL; it was not followed'
                                % mask_url(target))
        if followed == max_redirects:
            raise RedirectError('more than %d redirects (the last one to %s); stopped following them'
                                % (max_redirects, mask_url(target)))
        if target_origin != start:
            # Another origin: nothing the caller gave goes there, and it stays that way.
            credentials = dict(headers={}, url_username=None, url_password=None, force_basic_auth=False)
        followed += 1
        current = target
