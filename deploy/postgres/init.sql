-- One database per borough node: each node owns its schema and migrations (`cafx db upgrade`).
CREATE DATABASE camden;
CREATE DATABASE hackney;
CREATE DATABASE islington;
