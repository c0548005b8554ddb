//! The `ZEORAID_*` environment variables that override the file.
//!
//! Captured into a value instead of read ad hoc so that tests can pass an
//! environment explicitly (mutating the process environment is racy across
//! test threads) and so error messages can name the variables in effect.

use std::collections::BTreeMap;

use super::raw::TOP_LEVEL_KEYS;

pub const PREFIX: &str = "ZEORAID";

/// Handled outside the `config` crate: with the `__` separator it would
/// become the key `log`, which is the `[log]` table, and a string there is
/// a type error rather than the shorthand the spec promises.
pub const LOG_VAR: &str = "ZEORAID_LOG";

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Environment {
    /// Only variables starting with `ZEORAID_` (any case, as the `config`
    /// crate matches case-insensitively), with empty values dropped since
    /// an exported-but-empty variable almost always means "unset".
    vars: BTreeMap<String, String>,
}

impl Environment {
    /// The current process environment. Variables whose name or value is
    /// not Unicode cannot be meant for us and are skipped.
    pub fn from_process() -> Self {
        Self::from_vars(
            std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
        )
    }

    pub fn from_vars<K, V>(vars: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<String>,
        V: Into<String>,
    {
        let wanted = format!("{PREFIX}_").to_ascii_lowercase();
        let vars = vars
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .filter(|(k, v)| k.to_ascii_lowercase().starts_with(&wanted) && !v.is_empty())
            .collect();
        Environment { vars }
    }

    /// The value of `ZEORAID_LOG`, if set.
    pub fn log(&self) -> Option<&str> {
        self.vars
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(LOG_VAR))
            .map(|(_, v)| v.as_str())
    }

    /// Every override meant for the `config` crate: variables naming one
    /// of our settings, except `ZEORAID_LOG`.
    ///
    /// Only the first segment is matched: within a table of ours
    /// (`ZEORAID_HTTP__LISTN`) a typo is still reported as an unknown key.
    pub fn overrides(&self) -> impl Iterator<Item = (&str, &str)> {
        self.vars
            .iter()
            .filter(|(k, _)| !k.eq_ignore_ascii_case(LOG_VAR) && names_a_setting(k))
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub(super) fn source(&self) -> ::config::Environment {
        let map: ::config::Map<String, String> = self
            .overrides()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        ::config::Environment::with_prefix(PREFIX)
            // Without this the prefix separator defaults to the key
            // separator, and only `ZEORAID__HTTP__LISTEN` would match.
            .prefix_separator("_")
            .separator("__")
            .source(Some(map))
    }

    /// The variable that sets config key `key` ("http.listen" ->
    /// "ZEORAID_HTTP__LISTEN"), for pointing operators at the culprit.
    pub fn var_for_key(key: &str) -> String {
        format!("{PREFIX}_{}", key.replace('.', "__").to_ascii_uppercase())
    }
}

fn names_a_setting(var: &str) -> bool {
    let key = var[PREFIX.len() + 1..].to_ascii_lowercase();
    let first = key.split("__").next().unwrap_or_default();
    TOP_LEVEL_KEYS.contains(&first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_our_non_empty_variables() {
        let env = Environment::from_vars([
            ("PATH", "/bin"),
            ("ZEORAID_HTTP__LISTEN", "127.0.0.1:1"),
            ("ZEORAID_STORAGE", ""),
            ("ZEORAIDX", "1"),
            ("ZEORAID_LOG", "debug"),
            ("ZEORAID_PYTHON", "/usr/bin/python3"),
            ("zeoraid_listen", "127.0.0.1:2"),
            ("ZEORAID_HTTP__LISTN", "typo in our table"),
        ]);
        let overrides: Vec<_> = env.overrides().collect();
        assert_eq!(
            overrides,
            [
                ("ZEORAID_HTTP__LISTEN", "127.0.0.1:1"),
                ("ZEORAID_HTTP__LISTN", "typo in our table"),
                ("zeoraid_listen", "127.0.0.1:2"),
            ]
        );
        assert_eq!(env.log(), Some("debug"));
    }

    #[test]
    fn var_for_key_inverts_the_separator() {
        assert_eq!(Environment::var_for_key("http.listen"), "ZEORAID_HTTP__LISTEN");
        assert_eq!(
            Environment::var_for_key("max_frame_size"),
            "ZEORAID_MAX_FRAME_SIZE"
        );
    }
}
