#!/usr/bin/env bash
# Fetches the Apache Kafka broker's jars (KRaft server, storage tool and their run-time dependencies) from
# Maven Central into a git-ignored cache, for the apache_kafka tests and for running the stack locally on real
# Kafka. Idempotent: does nothing when the cache already holds this version. Needs java (17+) and mvn.
#   usage: bash scripts/fetch_kafka.sh [DEST]     (DEST defaults to .cache/kafka; prints the lib folder)
set -euo pipefail
cd "$(dirname "$0")/.."
KAFKA_VERSION=${CALLPULSE_KAFKA_VERSION:-4.4.0}
DEST=${1:-.cache/kafka}
LIB="$DEST/$KAFKA_VERSION/lib"
if [ -f "$LIB/.complete" ]; then
  echo "$LIB"
  exit 0
fi
for tool in java mvn; do
  command -v "$tool" >/dev/null 2>&1 || { echo "fetch_kafka: '$tool' is not installed (Java 17+ and Maven are needed)" >&2; exit 1; }
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# kafka_2.13 is the broker (kafka.Kafka, kafka.tools.StorageTool); kafka-tools adds the command-line tools;
# log4j-slf4j-impl + log4j-core give the broker a logging back-end (without it slf4j logs nothing at all).
cat > "$work/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>callpulse</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>2.24.3</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>2.24.3</version></dependency>
  </dependencies>
</project>
POM
mkdir -p "$LIB"
mvn -q -B -Dstyle.color=never -f "$work/pom.xml" dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$(cd "$LIB" && pwd)" >&2
touch "$LIB/.complete"
echo "$LIB"
