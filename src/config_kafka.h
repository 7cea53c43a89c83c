/* The Kafka connection part of the config file (config_kafka.c): any librdkafka property
 * (kafka.properties, KAFKA_PROPERTY_<NAME>) and the named shortcuts for the usual ones
 * (kafka.security_protocol, kafka.sasl.*, kafka.ssl.*), resolved into
 * cfg->kafka.properties. Internal to the config files: everyone else reads that. */
#ifndef JN_CONFIG_KAFKA_H
#define JN_CONFIG_KAFKA_H

#include <lua.h>
#include <stddef.h>

#include "buf.h"
#include "config.h"

/* Whether the dotted key (or section) is read here rather than by config.c's schema:
 * kafka.properties, kafka.security_protocol, kafka.sasl, kafka.ssl and below. */
int jn_config_kafka_owns(const char *key);
/* The i-th key read here (from 0), NULL past the last: for config.c's "did you mean". */
const char *jn_config_kafka_key(size_t i);
/* Resolves the properties: the file's (L with its table on top; NULL without a file),
 * then the environment's over them. Each is checked against librdkafka. On error
 * appends one line to err (never a secret's value) and returns -1. Runs no code of the
 * file. */
int jn_config_kafka_load(jn_config *cfg, lua_State *L, jn_sb *err);
/* Wipes and frees cfg->kafka.properties. */
void jn_config_kafka_free(jn_config *cfg);
/* The Kafka connection part of `junction --help-config`. */
void jn_config_kafka_describe(void);

#endif
