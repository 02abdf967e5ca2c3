"""Tributary's tests (`make test`, scripts/test.sh).

``SPARK_JAVA_OPTIONS``: what the tests give the profiles' ``TRIBUTARY_SPARK_JAVA_OPTIONS`` (conf/profiles/_base.yaml)
where Spark's JVMs start outside this host's environment (the live cluster's pods, YARN's containers): C1 only, as
scripts/test.sh's JAVA_TOOL_OPTIONS for every JVM the tests start here. Set per test, not exported, because the
documented specs (docs/specs) are rendered without it."""

SPARK_JAVA_OPTIONS = {"TRIBUTARY_SPARK_JAVA_OPTIONS": "-XX:TieredStopAtLevel=1"}
