# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (SPDX-License-Identifier: GPL-3.0-or-later)
"""binary_upload pull mode stops at max_size: a wrong URL cannot fill the disk (a real server on 127.0.0.1)."""

from __future__ import annotations

import io
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ansible.module_utils.basic import AnsibleModule
from core_compat import patch_module_args

from ansible_collections.hotswap.deploy.plugins.module_utils import artifact
from ansible_collections.hotswap.deploy.plugins.module_utils.common import HotswapError

SIZE = 3 * 1024 * 1024
LIMIT = 64 * 1024
CHECKSUM = 'sha256:' + 'ab' * 32
LINUX_AMD64 = {'os': 'linux', 'arch': 'x86_64'}


class Handler(BaseHTTPRequestHandler):
    """``/announced``: SIZE bytes with a Content-Length; ``/unannounced``: SIZE bytes, no length, close-delimited."""

    protocol_version = 'HTTP/1.0'

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.send_response(200)
        if self.path == '/announced':
            self.send_header('Content-Length', str(SIZE))
        self.end_headers()
        block = b'\0' * 65536
        try:
            for _block in range(SIZE // len(block)):
                self.wfile.write(block)
                self.server.sent += len(block)
        except OSError:
            pass  # the client stopped reading: that is the point


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super(Server, self).__init__(('127.0.0.1', 0), Handler)
        self.sent = 0

    def handle_error(self, request, client_address):
        pass


@pytest.fixture
def server():
    srv = Server()
    thread = threading.Thread(target=srv.serve_forever, kwargs={'poll_interval': 0.05}, daemon=True)
    thread.start()
    yield 'http://127.0.0.1:%d' % srv.server_address[1]
    srv.shutdown()
    srv.server_close()
    thread.join(5)


@pytest.fixture
def module():
    with patch_module_args({}):
        return AnsibleModule(argument_spec={}, supports_check_mode=True)


def partials(directory):
    found = []
    for _root, _dirs, files in os.walk(str(directory)):
        found.extend(name for name in files if '.partial-' in name)
    return found


@pytest.mark.parametrize('path, cause', [
    ('/announced', 'the server announced %d bytes' % SIZE),
    ('/unannounced', 'the server sent more'),
])
def test_url_writer_stops_at_max_size(server, path, cause):
    sink = io.BytesIO()
    writer = artifact.url_writer(server + path, 'app', server + path, 10, True, None, LIMIT)
    with pytest.raises(HotswapError) as err:
        writer(sink)
    msg = err.value.msg
    assert msg.startswith('downloading app from %s%s: %s, more than max_size (%d bytes)' % (server, path, cause, LIMIT))
    assert 'partial file removed' in msg and 'raise max_size' in msg
    assert len(sink.getvalue()) <= LIMIT          # never wrote beyond the limit


def test_url_writer_accepts_exactly_max_size(server):
    sink = io.BytesIO()
    artifact.url_writer(server + '/unannounced', 'app', server, 10, True, None, SIZE)(sink)
    assert len(sink.getvalue()) == SIZE


@pytest.mark.parametrize('path', ['/announced', '/unannounced'])
def test_pull_beyond_max_size_leaves_nothing(tmp_path, server, module, path):
    base = tmp_path / 'base'
    content = artifact.release_content('app', max_size=LIMIT)
    with pytest.raises(HotswapError) as err:
        artifact.upload(module, str(base), 'r1', 'app', CHECKSUM, url=server + path, url_timeout=10,
                        host=LINUX_AMD64, content=content)
    assert 'more than max_size (%d bytes)' % LIMIT in err.value.msg
    assert not partials(tmp_path)
    assert not (base / 'releases' / 'r1').exists()


def test_pull_of_an_archive_beyond_max_size_leaves_nothing(tmp_path, server, module):
    base = tmp_path / 'base'
    content = artifact.release_content('app', fmt='tar.gz', max_size=LIMIT)
    with pytest.raises(HotswapError) as err:
        artifact.upload(module, str(base), 'r1-' + 'ab' * 6, 'app', CHECKSUM, url=server + '/unannounced',
                        url_timeout=10, host=LINUX_AMD64, content=content)
    assert 'more than max_size' in err.value.msg, err.value.msg
    assert not partials(tmp_path)
