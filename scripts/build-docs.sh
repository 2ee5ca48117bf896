#!/usr/bin/env bash
# The HTML docs site (make docs; docs/development.md, "The docs site"): the modules, plugins and roles with
# antsibull-docs (from the collection installed in build/collections, so `make collection` first), the guides
# of docs/ with myst-parser (scripts/docs_guides.py), built by Sphinx into build/docsite/html. Offline: no
# intersphinx, nothing linked to or loaded from another host (docs/docsite/conf.py). Warnings fail the build.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
venv=$repo/build/docs-venv
site=$repo/build/docsite
export ANSIBLE_COLLECTIONS_PATH=$repo/build/collections
export PATH=$venv/bin:$PATH

[ -x "$venv/bin/sphinx-build" ] || { echo "build-docs: no $venv: run 'make docs'" >&2; exit 1; }
[ -f "$ANSIBLE_COLLECTIONS_PATH/ansible_collections/hotswap/deploy/MANIFEST.json" ] ||
    { echo "build-docs: the collection is not installed in $ANSIBLE_COLLECTIONS_PATH: run 'make collection'" >&2; exit 1; }

rm -rf "$site"
mkdir -p "$site/rst"
chmod 700 "$site" "$site/rst"  # antsibull-docs writes only into a directory no one else can write to

# The RST of every module, plugin and role (each entry point), with the collection's index pages.
antsibull-docs --config-file docs/docsite/antsibull-docs.cfg collection --use-current --fail-on-error \
    --dest-dir "$site/rst" hotswap.deploy
# The top page, and the guides under guides/ (with the pages they link to under project/).
cp docs/docsite/index.rst "$site/rst/index.rst"
python3 scripts/docs_guides.py "$site/rst"

sphinx-build -b html -c docs/docsite -d "$site/doctrees" -W --keep-going -q "$site/rst" "$site/html"
# The theme marks each page's article with the URL of a schema vocabulary (itemtype): not a link and nothing
# loads it, but it names another host, and the site names none.
find "$site/html" -name '*.html' -exec sed -i -E 's/ itemscope="itemscope" itemtype="[^"]*"//' {} +
echo "build-docs: $site/html/index.html"
