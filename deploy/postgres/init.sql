-- gold's database is POSTGRES_DB (warren); config-svc keeps its own.
CREATE DATABASE warren_config;
