#!/usr/bin/env bash
# examples/regenerate.sh — (re)builds the two example WSO2 API Manager 4.2.0
# packs next to this script, with the REAL engines:
#
#   wso2am-4.2.0-old/   a pack that has been used (update level 5): customised
#                       deployment.toml, H2 databases with data, a Lucene 8
#                       registry index, tenant/userstore/keystore state, a stale
#                       wso2carbon.pid
#   wso2am-4.2.0-new/   the same product after a U2 update (update level 20),
#                       never started: pristine config (+ the update's own
#                       change), freshly shipped DBs with 3 rows, no solr/
#   pristine-4.2.0/     only repository/conf/deployment.toml as the OLD pack
#                       shipped it (the "base" for a three-way merge)
#
# Uses ONLY the project's engine scripts in ../tests/fixtures/engines/
# (H2 2.1.214 from Debian libh2-java => MVStore format 2, the format of APIM
# 4.2.0's H2 2.1.210; Lucene 8 from Debian liblucene8-java, as APIM 4.2.0's
# Lucene 8.11.1). They install what they need on first use (root/sudo).
#
# Everything is built in a staging directory, verified with check-h2-db.sh /
# check-lucene-index.sh, and only then swapped in place of the old trees.
# Non-engine files are byte-for-byte deterministic; all mtimes are set to
# 2024-01-01T00:00:00Z. DB and index bytes differ from run to run (timestamps
# and random segment ids written by the engines) — that is expected.
#
# Usage: examples/regenerate.sh        (no arguments)
set -euo pipefail
umask 022

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
ENGINES=$(cd "$HERE/../tests/fixtures/engines" && pwd -P)
OLD_NAME=wso2am-4.2.0-old
NEW_NAME=wso2am-4.2.0-new
PRISTINE_NAME=pristine-4.2.0
MTIME=2024-01-01T00:00:00Z

die() { echo "regenerate: $*" >&2; exit 1; }
[ $# -eq 0 ] || die "usage: examples/regenerate.sh (no arguments)"
for s in make-h2-db.sh check-h2-db.sh make-lucene-index.sh check-lucene-index.sh; do
  [ -x "$ENGINES/$s" ] || die "missing $ENGINES/$s"
done
command -v python3 >/dev/null 2>&1 || die "python3 is needed (deterministic pseudo-random keystore bytes)"

STAGE=$(mktemp -d "$HERE/.regenerate.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT
OLD="$STAGE/$OLD_NAME"
NEW="$STAGE/$NEW_NAME"
PRISTINE="$STAGE/$PRISTINE_NAME"

# ---------------------------------------------------------------- helpers
# put FILE CONTENT: write CONTENT verbatim (no newline added), creating dirs.
put() { mkdir -p "$(dirname "$1")"; printf '%s' "$2" > "$1"; }
# putn FILE CONTENT: same, with a trailing newline.
putn() { mkdir -p "$(dirname "$1")"; printf '%s\n' "$2" > "$1"; }
# randbin FILE SEED SIZE: deterministic pseudo-random bytes ("keystores").
randbin() {
  mkdir -p "$(dirname "$1")"
  python3 -c 'import random, sys; sys.stdout.buffer.write(random.Random(sys.argv[1]).randbytes(int(sys.argv[2])))' "$2" "$3" > "$1"
}
# placeholder_jar FILE: an empty zip (end-of-central-directory record only).
placeholder_jar() { mkdir -p "$(dirname "$1")"; { printf 'PK\005\006'; head -c 18 /dev/zero; } > "$1"; }

# deployment_toml HOSTNAME TLS_KEYSTORE_PASSWORD WITH_U2_THROTTLING_CHANGE(0|1)
# Modelled on the APIM 4.2.0 default repository/conf/deployment.toml.
deployment_toml() {
  local host=$1 kspass=$2 u2=$3
  cat <<EOF
[server]
hostname = "$host"
node_ip = "127.0.0.1"
#offset=0
base_path = "\${carbon.protocol}://\${carbon.host}:\${carbon.management.port}"
#discard_empty_caches = false
server_role = "default"

[super_admin]
username = "admin"
password = "admin"
create_admin_account = true

[user_store]
type = "database_unique_id"

[database.apim_db]
type = "h2"
url = "jdbc:h2:./repository/database/WSO2AM_DB;AUTO_SERVER=TRUE;DB_CLOSE_ON_EXIT=FALSE"
username = "wso2carbon"
password = "wso2carbon"

[database.shared_db]
type = "h2"
url = "jdbc:h2:./repository/database/WSO2SHARED_DB;DB_CLOSE_ON_EXIT=FALSE"
username = "wso2carbon"
password = "wso2carbon"

[database.local]
url = "jdbc:h2:./repository/database/WSO2CARBON_DB;DB_CLOSE_ON_EXIT=FALSE"

[keystore.tls]
file_name =  "wso2carbon.jks"
type =  "JKS"
password =  "$kspass"
alias =  "wso2carbon"
key_password =  "wso2carbon"

#[keystore.primary]
#file_name =  "wso2carbon.jks"
#type =  "JKS"
#password =  "wso2carbon"
#alias =  "wso2carbon"
#key_password =  "wso2carbon"

[truststore]
file_name = "client-truststore.jks"
type = "JKS"
password = "wso2carbon"

[[apim.gateway.environment]]
name = "Default"
type = "hybrid"
provider = "wso2"
display_in_api_console = true
description = "This is a hybrid gateway that handles both production and sandbox token traffic."
show_as_token_endpoint_url = true
service_url = "https://localhost:\${mgt.transport.https.port}/services/"
username= "\${admin.username}"
password= "\${admin.password}"
ws_endpoint = "ws://localhost:9099"
wss_endpoint = "wss://localhost:8099"
http_endpoint = "http://localhost:\${http.nio.port}"
https_endpoint = "https://localhost:\${https.nio.port}"

[apim.analytics]
enable = false
auth_token = ""

[apim.devportal]
url = "https://localhost:\${mgt.transport.https.port}/devportal"
#enable_application_sharing = false
#application_sharing_type = "default"
EOF
  if [ "$u2" = 1 ]; then
    cat <<'EOF'

[apim.throttling]
enable_data_publishing = true
EOF
  fi
  cat <<'EOF'

[apim.cors]
allow_origins = "*"
allow_methods = ["GET","PUT","POST","DELETE","PATCH","OPTIONS"]
allow_headers = ["authorization","Access-Control-Allow-Origin","Content-Type","SOAPAction","apikey","Internal-Key"]
allow_credentials = false

[[event_handler]]
name="userPostSelfRegistration"
subscriptions=["POST_ADD_USER"]

[service_provider]
sp_name_regex = "^[\\sa-zA-Z0-9._-]*$"

# Registry (Solr) index location, relative to the Solr core instance directory
# repository/conf/solr/registry-indexing (the default: <pack>/solr/data).
[indexing]
location = "../../../../solr/data"

[oauth.grant_type.token_exchange]
enable = true
allow_refresh_tokens = true
iat_validity_period = "1h"
EOF
}

carbon_xml() { # HOSTNAME — 4.x regenerates carbon.xml from its template at startup
  cat <<EOF
<?xml version="1.0" encoding="ISO-8859-1"?>
<!--
 ~ Generated at server startup from
 ~ repository/resources/conf/templates/repository/conf/carbon.xml.j2 and deployment.toml.
 ~ Do not edit: edit deployment.toml instead.
-->
<Server xmlns="http://wso2.org/projects/carbon/carbon.xml">
    <Name>WSO2 API Manager</Name>
    <ServerKey>AM</ServerKey>
    <Version>4.2.0</Version>
    <HostName>$1</HostName>
    <MgtHostName>$1</MgtHostName>
    <ServerURL>local:/\${carbon.context}/services/</ServerURL>
    <ServerRoles>
        <Role>APIManager</Role>
    </ServerRoles>
    <Ports>
        <Offset>0</Offset>
        <JMX>
            <RMIRegistryPort>9999</RMIRegistryPort>
            <RMIServerPort>11111</RMIServerPort>
        </JMX>
    </Ports>
    <Security>
        <KeyStore>
            <Location>\${carbon.home}/repository/resources/security/wso2carbon.jks</Location>
            <Type>JKS</Type>
            <KeyAlias>wso2carbon</KeyAlias>
        </KeyStore>
    </Security>
</Server>
EOF
}

LOG4J2='# WSO2 API Manager 4.2.0 - log4j2 configuration (abridged)
appenders = CARBON_CONSOLE, CARBON_LOGFILE

appender.CARBON_CONSOLE.type = Console
appender.CARBON_CONSOLE.name = CARBON_CONSOLE
appender.CARBON_CONSOLE.layout.type = PatternLayout
appender.CARBON_CONSOLE.layout.pattern = [%d] %5p {%c{1}} - %m%ex%n

appender.CARBON_LOGFILE.type = RollingFile
appender.CARBON_LOGFILE.name = CARBON_LOGFILE
appender.CARBON_LOGFILE.fileName = ${sys:carbon.home}/repository/logs/wso2carbon.log
appender.CARBON_LOGFILE.filePattern = ${sys:carbon.home}/repository/logs/wso2carbon-%d{MM-dd-yyyy}-%i.log
appender.CARBON_LOGFILE.layout.type = PatternLayout
appender.CARBON_LOGFILE.layout.pattern = TID: [%tenantId] [%appName] [%d] %5p {%c} - %m%ex%n
appender.CARBON_LOGFILE.policies.type = Policies
appender.CARBON_LOGFILE.policies.time.type = TimeBasedTriggeringPolicy
appender.CARBON_LOGFILE.policies.size.type = SizeBasedTriggeringPolicy
appender.CARBON_LOGFILE.policies.size.size = 10MB
appender.CARBON_LOGFILE.strategy.type = DefaultRolloverStrategy
appender.CARBON_LOGFILE.strategy.max = 20

loggers = org-wso2-carbon, org-apache-synapse
logger.org-wso2-carbon.name = org.wso2.carbon
logger.org-wso2-carbon.level = INFO
logger.org-apache-synapse.name = org.apache.synapse
logger.org-apache-synapse.level = INFO

rootLogger.level = WARN
rootLogger.appenderRef.CARBON_CONSOLE.ref = CARBON_CONSOLE
rootLogger.appenderRef.CARBON_LOGFILE.ref = CARBON_LOGFILE'

API_MANAGER_SH='#!/bin/sh
# api-manager.sh - WSO2 API Manager 4.2.0 start script (placeholder for the carryover examples;
# the real script sets up the JVM, cd-s to CARBON_HOME, wipes tmp/ and writes wso2carbon.pid).
CARBON_HOME="$(cd "$(dirname "$0")/.." && pwd)"
echo "placeholder: would start WSO2 API Manager 4.2.0 from $CARBON_HOME" >&2
exit 1'

TOKEN_API='<?xml version="1.0" encoding="UTF-8"?>
<api xmlns="http://ws.apache.org/ns/synapse" name="_WSO2AMTokenAPI_" context="/token">
    <resource methods="POST" url-mapping="/*" faultSequence="_token_fault_">
        <inSequence>
            <property name="uri.var.portnum" expression="get-property('"'"'keyManager.port'"'"')"/>
            <send>
                <endpoint>
                    <http uri-template="https://localhost:{uri.var.portnum}/oauth2/token"/>
                </endpoint>
            </send>
        </inSequence>
        <outSequence>
            <send/>
        </outSequence>
    </resource>
    <handlers>
        <handler class="org.wso2.carbon.apimgt.gateway.handlers.ext.APIManagerCacheExtensionHandler"/>
    </handlers>
</api>'

DB_README='This directory holds the embedded H2 databases of WSO2 API Manager
(WSO2AM_DB, WSO2SHARED_DB, WSO2CARBON_DB, WSO2MB_DB, WSO2METRICS_DB).
Point the [database.*] sections of repository/conf/deployment.toml at an
external RDBMS for production use.'

# pack_common ROOT LEVEL HOSTNAME KSPASS U2CHANGE
pack_common() {
  local r=$1 level=$2 host=$3 kspass=$4 u2=$5 j
  putn "$r/bin/version.txt" "WSO2 API Manager v4.2.0"
  putn "$r/bin/wso2carbon-version.txt" "WSO2 Carbon Framework v4.8.1"
  putn "$r/bin/api-manager.sh" "$API_MANAGER_SH"; chmod 0755 "$r/bin/api-manager.sh"
  put "$r/updates/product.txt" "wso2am-4.2.0"
  putn "$r/updates/config.json" "{
  \"update-level\": $level,
  \"product\": {
    \"name\": \"wso2am\",
    \"version\": \"4.2.0\"
  }
}"
  for j in h2-engine_2.1.210.wso2v1.jar lucene_8.11.1.wso2v1.jar solr_8.11.1.wso2v7.jar org.wso2.carbon.core_4.8.1.jar; do
    placeholder_jar "$r/repository/components/plugins/$j"
  done
  mkdir -p "$r/repository/conf"
  deployment_toml "$host" "$kspass" "$u2" > "$r/repository/conf/deployment.toml"
  putn "$r/repository/conf/log4j2.properties" "$LOG4J2"
  carbon_xml "$host" > "$r/repository/conf/carbon.xml"
  putn "$r/repository/database/README.txt" "$DB_README"
  randbin "$r/repository/resources/security/client-truststore.jks" client-truststore-4.2.0 2048
  putn "$r/repository/deployment/server/synapse-configs/default/api/_TokenAPI_.xml" "$TOKEN_API"
  putn "$r/tmp/README.txt" "Temporary files of the server (java.io.tmpdir); api-manager.sh empties this directory on start."
}

echo "regenerate: building in $STAGE" >&2

# ---------------------------------------------------------------- OLD pack
pack_common "$OLD" 5 "apim.example.com" "s3cret-ks" 0
# The operator re-keyed the TLS keystore (hence its new password) and added one.
randbin "$OLD/repository/resources/security/wso2carbon.jks" wso2carbon-operator-rekeyed 2048
randbin "$OLD/repository/resources/security/apim-custom.jks" apim-custom-operator 1536
ln -s apim-custom.jks "$OLD/repository/resources/security/current.jks"
putn "$OLD/repository/data/org.example/state.json" '{
  "component": "org.example.sample",
  "last_sync": "2023-11-30T17:42:05Z",
  "cursor": 4711
}'
putn "$OLD/repository/data/org.example/notes.txt" "runtime data written by a (fictional) org.example component; carry it."
putn "$OLD/repository/tenants/1/synapse-configs/default/api/tenant1--Pets_v1.0.xml" '<?xml version="1.0" encoding="UTF-8"?>
<api xmlns="http://ws.apache.org/ns/synapse" name="tenant1--Pets" context="/t/tenant1.example.com/pets/1.0" version="1.0" version-type="context">
    <resource methods="GET" url-mapping="/pets/*">
        <inSequence>
            <send>
                <endpoint key="tenant1--Pets_APIproductionEndpoint_1.0"/>
            </send>
        </inSequence>
        <outSequence>
            <send/>
        </outSequence>
    </resource>
</api>'
putn "$OLD/repository/deployment/server/userstores/PRIMARY2.xml" '<?xml version="1.0" encoding="UTF-8"?>
<UserStoreManager class="org.wso2.carbon.user.core.jdbc.UniqueIDJDBCUserStoreManager">
    <Property name="DomainName">PRIMARY2</Property>
    <Property name="Description">Secondary JDBC user store added by the operator</Property>
    <Property name="driverName">org.h2.Driver</Property>
    <Property name="url">jdbc:h2:./repository/database/WSO2SHARED_DB;DB_CLOSE_ON_EXIT=FALSE</Property>
    <Property name="userName">wso2carbon</Property>
    <Property name="password">wso2carbon</Property>
    <Property name="ReadOnly">false</Property>
    <Property name="Disabled">false</Property>
</UserStoreManager>'
putn "$OLD/repository/logs/wso2carbon.log" "TID: [-1234] [] [2023-12-01 09:15:02,114]  INFO {org.wso2.carbon.core.init.CarbonServerManager} - Starting WSO2 API Manager 4.2.0 ...
TID: [-1234] [] [2023-12-01 09:15:31,870]  INFO {org.wso2.carbon.core.internal.StartupFinalizerServiceComponent} - WSO2 Carbon started in 29 sec
TID: [-1234] [] [2023-12-01 09:15:31,871]  INFO {org.wso2.carbon.ui.internal.CarbonUIServiceComponent} - Mgt Console URL  : https://apim.example.com:9443/carbon/
TID: [1] [api/am/publisher] [2023-12-01 10:02:47,003]  INFO {org.wso2.carbon.apimgt.impl.APIProviderImpl} - API tenant1--Pets:v1.0 published
TID: [-1234] [] [2023-12-02 18:00:00,412]  INFO {org.wso2.carbon.core.ServerManagement} - Shutdown complete"
# a stale pid file from the last run (the pack is stopped; that pid does not exist)
putn "$OLD/wso2carbon.pid" "4194301"

# ---------------------------------------------------------------- NEW pack
pack_common "$NEW" 20 "localhost" "wso2carbon" 1
randbin "$NEW/repository/resources/security/wso2carbon.jks" wso2carbon-4.2.0-shipped 2048
mkdir -p "$NEW/repository/data"; : > "$NEW/repository/data/README.txt"   # empty file
putn "$NEW/repository/tenants/README.txt" "Per-tenant deployment artifacts are created here at runtime (repository/tenants/<tenant id>/)."
putn "$NEW/repository/deployment/server/userstores/README.txt" "Secondary user store configurations (<DOMAIN>.xml) are placed here."
putn "$NEW/repository/logs/wso2carbon.log" "TID: [-1234] [] [2024-01-01 00:00:00,000]  INFO {org.wso2.carbon.core.init.CarbonServerManager} - Log file of a freshly updated pack (WSO2 Update 2.0, update level 20)
TID: [-1234] [] [2024-01-01 00:00:00,000]  INFO {org.wso2.carbon.core.init.CarbonServerManager} - The server has not been started since the update"

# ---------------------------------------------------------------- pristine base
mkdir -p "$PRISTINE/repository/conf"
deployment_toml "localhost" "wso2carbon" 0 > "$PRISTINE/repository/conf/deployment.toml"

# ---------------------------------------------------------------- engines
make_db() { # PACK NAME ROWS
  "$ENGINES/make-h2-db.sh" "$1/repository/database" "$2" "$3" >/dev/null \
    || die "make-h2-db.sh $1/repository/database $2 $3 failed"
}
OLD_DBS="WSO2CARBON_DB:120 WSO2AM_DB:80 WSO2SHARED_DB:60 WSO2MB_DB:10 WSO2METRICS_DB:5"
NEW_DBS="WSO2CARBON_DB:3 WSO2AM_DB:3 WSO2SHARED_DB:3 WSO2MB_DB:3 WSO2METRICS_DB:3"
for spec in $OLD_DBS; do make_db "$OLD" "${spec%%:*}" "${spec##*:}"; done
for spec in $NEW_DBS; do make_db "$NEW" "${spec%%:*}" "${spec##*:}"; done
LUCENE_MAJOR=8 "$ENGINES/make-lucene-index.sh" "$OLD/solr/data/index" 40 >/dev/null || die "make-lucene-index.sh failed"
mkdir -p "$OLD/solr/data/tlog"   # empty (NB: git does not keep empty directories)

# ---------------------------------------------------------------- verify
for spec in $OLD_DBS; do
  "$ENGINES/check-h2-db.sh" "$OLD/repository/database/${spec%%:*}" "${spec##*:}" >/dev/null 2>&1 \
    || die "check-h2-db.sh failed for $OLD_NAME ${spec%%:*}"
done
for spec in $NEW_DBS; do
  "$ENGINES/check-h2-db.sh" "$NEW/repository/database/${spec%%:*}" "${spec##*:}" >/dev/null 2>&1 \
    || die "check-h2-db.sh failed for $NEW_NAME ${spec%%:*}"
done
LUCENE_MAJOR=8 "$ENGINES/check-lucene-index.sh" "$OLD/solr/data/index" 40 >/dev/null 2>&1 || die "check-lucene-index.sh failed"
leftovers=$(find "$STAGE" \( -name '*.lock.db' -o -name '*.trace.db' -o -name '*.temp.db' -o -name '*.tempFile' -o -name '*.newFile' \) -print)
[ -z "$leftovers" ] || die "engine left side files behind: $leftovers"

# ---------------------------------------------------------------- normalise
find "$STAGE" -mindepth 1 -type d -exec chmod 0755 {} +
find "$STAGE" -mindepth 1 -type f ! -name '*.sh' -exec chmod 0644 {} +
find "$STAGE" -mindepth 1 -exec touch -h -d "$MTIME" {} +

# ---------------------------------------------------------------- swap in
for n in "$OLD_NAME" "$NEW_NAME" "$PRISTINE_NAME"; do
  rm -rf "${HERE:?}/$n"
  mv -T "$STAGE/$n" "$HERE/$n"
done
for n in "$OLD_NAME" "$NEW_NAME" "$PRISTINE_NAME"; do echo "$HERE/$n"; done
