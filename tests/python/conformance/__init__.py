"""ZODB/ZEO storage conformance suite, run against a plain runzeo and
through zeoraid; see README.md."""
