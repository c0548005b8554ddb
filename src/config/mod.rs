//! zeoraid's settings: a TOML file overridden by `ZEORAID_*` variables,
//! checked as a whole before anything starts.
//!
//! Loading runs in three stages so each kind of mistake gets the clearest
//! message it can: the `config` crate merges file and environment and
//! reports syntax errors; serde maps the result onto `raw` structs and
//! rejects unknown keys and wrong types; `validate` interprets values and
//! reports every remaining problem at once.

mod duration;
mod env;
mod listen;
mod model;
mod raw;
mod tls;
mod validate;

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

pub use duration::{parse_duration, DurationError, HumanDuration};
pub use env::Environment;
pub use model::*;
pub use validate::{parse_member_address, Problem};

use raw::RawConfig;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Malformed TOML, an unknown key or a value of the wrong type. These
    /// stop loading at the first error because later values cannot be
    /// interpreted reliably.
    #[error("invalid config {origin}: {message}{}", EnvNote(env_vars))]
    Parse {
        origin: String,
        message: String,
        /// `ZEORAID_*` variables that were merged in, since an unknown key
        /// may come from one of them rather than from the file.
        env_vars: Vec<String>,
    },
    /// Every problem found by validation: top-level keys, then tables,
    /// then members in order.
    #[error("invalid config {origin}: {}", Problems(problems))]
    Invalid { origin: String, problems: Vec<Problem> },
}

struct EnvNote<'a>(&'a [String]);

impl fmt::Display for EnvNote<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return Ok(());
        }
        write!(f, " (environment overrides in effect: {})", self.0.join(", "))
    }
}

struct Problems<'a>(&'a [Problem]);

impl fmt::Display for Problems<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(f, "{n} problem{}", if n == 1 { "" } else { "s" })?;
        for problem in self.0 {
            write!(f, "\n  {problem}")?;
        }
        Ok(())
    }
}

/// Loads `path` with the process's `ZEORAID_*` overrides applied.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    load_with_env(path, &Environment::from_process())
}

pub fn load_with_env(path: &Path, env: &Environment) -> Result<Config, ConfigError> {
    let text = fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mut config = from_toml_str(&text, &path.display().to_string(), env)?;
    // A relative state_dir belongs to the configuration, wherever zeoraid
    // is started from.
    if config.state_dir.is_relative() {
        let base = path.parent().unwrap_or(Path::new("."));
        config.state_dir = base.join(&config.state_dir);
    }
    tls::resolve_paths(&mut config, path.parent().unwrap_or(Path::new(".")));
    Ok(config)
}

/// `origin` names the source in messages (normally the file path).
pub fn from_toml_str(text: &str, origin: &str, env: &Environment) -> Result<Config, ConfigError> {
    let parse_error = |err: ::config::ConfigError| {
        let message = describe(&err);
        // Skip the note when the message already names the variable.
        let env_vars = if message.contains("(from ZEORAID_") {
            Vec::new()
        } else {
            env.overrides().map(|(k, _)| k.to_owned()).collect()
        };
        ConfigError::Parse {
            origin: origin.to_owned(),
            message,
            env_vars,
        }
    };
    let merged = ::config::Config::builder()
        .add_source(::config::File::from_str(text, ::config::FileFormat::Toml))
        .add_source(env.source())
        .build()
        .map_err(parse_error)?;
    let raw: RawConfig = merged.try_deserialize().map_err(parse_error)?;
    validate::validate(raw, env.log()).map_err(|problems| ConfigError::Invalid {
        origin: origin.to_owned(),
        problems,
    })
}

/// Renders a `config` crate error key-first ("timeouts: unknown field
/// ..."), matching how validation problems read, instead of the crate's
/// "... for key `timeouts`" suffix, and without our internal type names.
fn describe(err: &::config::ConfigError) -> String {
    use ::config::ConfigError as E;
    match err {
        E::Type {
            origin,
            unexpected,
            expected,
            key,
        } => with_key(
            key.as_deref(),
            origin.as_deref(),
            plain(format!("invalid type: {unexpected}, expected {expected}")),
        ),
        E::At { error, origin, key } => with_key(key.as_deref(), origin.as_deref(), describe(error)),
        E::FileParse { cause, .. } => cause.to_string().trim_end().to_owned(),
        other => plain(other.to_string()),
    }
}

/// serde names what it expected in Rust terms ("struct RawLog", "a
/// sequence"); operators write TOML.
fn plain(message: String) -> String {
    let mut message = message
        .replace("expected a sequence", "expected an array")
        .replace("expected a floating point", "expected a number");
    if let Some(at) = message.find("expected struct ") {
        let name_start = at + "expected struct ".len();
        let name_end = message[name_start..]
            .find(|c: char| !c.is_alphanumeric() && c != '_')
            .map_or(message.len(), |n| name_start + n);
        message.replace_range(at..name_end, "expected a table");
    }
    message
}

fn with_key(key: Option<&str>, origin: Option<&str>, what: String) -> String {
    let Some(key) = key.filter(|k| !k.is_empty()) else {
        return what;
    };
    let key = dotted(key);
    // The crate tags values taken from `Environment` with this origin.
    if origin == Some("the environment") {
        format!("{key} (from {}): {what}", Environment::var_for_key(&key))
    } else {
        format!("{key}: {what}")
    }
}

/// The `config` crate joins an index and the following field without a
/// dot ("members[0]restart"); restore the path as written in TOML.
fn dotted(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 2);
    let mut after_index = false;
    for c in key.chars() {
        if after_index && c != '.' && c != '[' {
            out.push('.');
        }
        after_index = c == ']';
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests;
