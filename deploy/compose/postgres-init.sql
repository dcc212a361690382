-- Run once by the postgres image on an empty data volume (docker-entrypoint-initdb.d):
-- one database per gateway, so gw-a and gw-b never share tables (each could be another
-- organisation's server). The role is POSTGRES_USER of compose.yaml.
CREATE DATABASE gw_a OWNER gateway;
CREATE DATABASE gw_b OWNER gateway;
