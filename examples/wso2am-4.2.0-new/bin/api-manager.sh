#!/bin/sh
# api-manager.sh - WSO2 API Manager 4.2.0 start script (placeholder for the carryover examples;
# the real script sets up the JVM, cd-s to CARBON_HOME, wipes tmp/ and writes wso2carbon.pid).
CARBON_HOME="$(cd "$(dirname "$0")/.." && pwd)"
echo "placeholder: would start WSO2 API Manager 4.2.0 from $CARBON_HOME" >&2
exit 1
