#!/usr/bin/env bash
# The main job on the bundled example: inspect the old pack, snapshot it, verify the snapshot,
# transplant it into a copy of the updated pack, and verify the result with the real engines.
# Works on copies in a temp dir (or $1), so the examples stay as they are.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
work=${1:-$(mktemp -d)}
mkdir -p "$work"
cargo build --release --manifest-path "$repo/Cargo.toml"   # a first build takes a few minutes on 2 cores
co="${CARGO_TARGET_DIR:-$repo/target}/release/carryover"
export CARRYOVER_CATALOG="$work/catalog.db"
cp -a "$here/wso2am-4.2.0-old" "$work/old"
cp -a "$here/wso2am-4.2.0-new" "$work/new"
mkdir -p "$work/old/solr/data/tlog"   # git does not keep empty dirs
cd "$work"
set -x
"$co" inspect old
"$co" snapshot old -o old.tar.zst
"$co" verify old.tar.zst
# deployment.toml is merged three-way: the base is the file as 4.2.0 shipped it.
"$co" transplant old.tar.zst new --base "$here/pristine-4.2.0" --dry-run
"$co" transplant old.tar.zst new --base "$here/pristine-4.2.0"
"$co" verify old.tar.zst --against new
set +x
# The real engines open what was carried and find every row and document.
for db in WSO2CARBON_DB:120 WSO2AM_DB:80 WSO2SHARED_DB:60 WSO2MB_DB:10 WSO2METRICS_DB:5; do
  "$repo/tests/fixtures/engines/check-h2-db.sh" "new/repository/database/${db%%:*}" "${db##*:}"
done
LUCENE_MAJOR=8 "$repo/tests/fixtures/engines/check-lucene-index.sh" new/solr/data/index 40
# Both the operator's edits and the update's change are in the merged deployment.toml.
grep -E 'hostname = "apim.example.com"|password =  "s3cret-ks"|enable_data_publishing = true' new/repository/conf/deployment.toml
echo "quickstart done in $work"
