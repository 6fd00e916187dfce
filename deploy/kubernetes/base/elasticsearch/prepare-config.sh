#!/bin/sh
# Init container of the Elasticsearch pod (Elasticsearch's own image): copies the image's
# configuration into an emptyDir that the server then uses as its configuration directory, and adds
# two file-realm users with the passwords from the elasticsearch-credentials Secret:
#   kibana-server   role kibana_system (what Kibana connects as; Kibana refuses the "elastic" user)
#   ipfix-collect   role ipfix_collect (roles.yml)
# The directory is rebuilt at every start, so a changed Secret takes effect on the next restart.
#
# ES_HOME (default /usr/share/elasticsearch), CONFIG_DIR (default /mnt/config) and SETUP_DIR (where
# roles.yml is; default this script's directory) can be changed for tests.
set -eu
: "${ES_HOME:=/usr/share/elasticsearch}"
: "${CONFIG_DIR:=/mnt/config}"
: "${SETUP_DIR:=$(dirname "$0")}"
: "${KIBANA_PASSWORD:?from the Secret elasticsearch-credentials, key kibana-server}"
: "${COLLECTOR_PASSWORD:?from the Secret elasticsearch-credentials, key ipfix-collect}"

cp -R "$ES_HOME/config/." "$CONFIG_DIR/"
cp "$SETUP_DIR/roles.yml" "$CONFIG_DIR/roles.yml"
: >"$CONFIG_DIR/users"        # only these two users (elasticsearch-users needs the files)
: >"$CONFIG_DIR/users_roles"
ES_PATH_CONF="$CONFIG_DIR" "$ES_HOME/bin/elasticsearch-users" useradd kibana-server \
    -p "$KIBANA_PASSWORD" -r kibana_system
ES_PATH_CONF="$CONFIG_DIR" "$ES_HOME/bin/elasticsearch-users" useradd ipfix-collect \
    -p "$COLLECTOR_PASSWORD" -r ipfix_collect
echo "prepared $CONFIG_DIR: users kibana-server, ipfix-collect"
