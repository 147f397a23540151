//! `--config FILE` (or TESSERA_CONFIG): settings from a TOML file, for any command.
//!
//! Keys are flag names (`max_in_flight` or `max-in-flight`), at the top level (for every command
//! that has the flag) or in a table named after the command (`[serve]`, `[sid.train]`). The file
//! is applied by setting each flag's environment variable when it is not already set, before the
//! flags are parsed, so the precedence is: flags, then the environment, then the file, then the
//! defaults. A key no flag of the command has is an error that lists the keys it does have.

use anyhow::{Context, bail};
use clap::CommandFactory;
use std::ffi::OsString;
use std::path::PathBuf;

/// The config file named on the command line or in TESSERA_CONFIG.
fn config_path(argv: &[OsString]) -> Option<PathBuf> {
    let mut args = argv.iter().skip(1);
    while let Some(arg) = args.next() {
        let arg = arg.to_string_lossy();
        if arg == "--config" {
            return args.next().map(PathBuf::from);
        }
        if let Some(path) = arg.strip_prefix("--config=") {
            return Some(PathBuf::from(path));
        }
    }
    std::env::var_os("TESSERA_CONFIG").map(PathBuf::from)
}

/// Whether `command` or any of its subcommands has the flag `--{flag}`.
fn any_command_has(command: &clap::Command, flag: &str) -> bool {
    command.get_arguments().any(|a| a.get_long() == Some(flag))
        || command.get_subcommands().any(|c| any_command_has(c, flag))
}

fn value_text(key: &str, value: &toml::Value) -> anyhow::Result<String> {
    Ok(match value {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Array(items) => items
            .iter()
            .map(|v| value_text(key, v))
            .collect::<anyhow::Result<Vec<_>>>()?
            .join(","),
        other => bail!("{key}: a {} cannot be a flag value", other.type_str()),
    })
}

/// Environment assignments the config file asks for: (variable, value), for the command that
/// `argv` runs.
pub fn assignments(argv: &[OsString]) -> anyhow::Result<Vec<(String, String)>> {
    let Some(path) = config_path(argv) else {
        return Ok(Vec::new());
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading the config file {}", path.display()))?;
    let doc: toml::Table = text
        .parse()
        .with_context(|| format!("config file {}", path.display()))?;
    // The (sub)command being run, and the tables that apply to it.
    let mut command = super::Args::command();
    let mut table_path = Vec::new();
    let mut args = argv.iter().skip(1);
    while let Some(arg) = args.next() {
        let arg = arg.to_string_lossy();
        if arg == "--config" {
            // Its value is a path, not a subcommand.
            args.next();
            continue;
        }
        if arg.starts_with('-') {
            continue;
        }
        match command.find_subcommand(arg.as_ref()) {
            Some(sub) => {
                table_path.push(arg.to_string());
                command = sub.clone();
            }
            None => break,
        }
    }
    let mut entries: Vec<(String, &toml::Value)> = doc
        .iter()
        .filter(|(_, v)| !v.is_table())
        .map(|(k, v)| (k.clone(), v))
        .collect();
    let mut table = Some(&doc);
    for name in &table_path {
        table = table
            .and_then(|t| t.get(name))
            .and_then(toml::Value::as_table);
        if let Some(t) = table {
            let scoped = t.iter().filter(|(_, v)| !v.is_table());
            entries.extend(scoped.map(|(k, v)| (format!("{name}.{k}"), v)));
        }
    }
    let mut out = Vec::new();
    for (key, value) in entries {
        let flag = key.rsplit('.').next().unwrap_or(&key).replace('_', "-");
        if flag == "config" {
            continue;
        }
        let arg = command
            .get_arguments()
            .find(|a| a.get_long() == Some(flag.as_str()));
        let Some(arg) = arg else {
            // Top-level keys are for whichever commands have them; one that no command has is
            // a typo.
            if !key.contains('.') {
                if !any_command_has(&super::Args::command(), &flag) {
                    bail!(
                        "config file {}: `{key}`: no tessera command has a flag --{flag}",
                        path.display()
                    );
                }
                continue;
            }
            let known: Vec<String> = command
                .get_arguments()
                .filter(|a| a.get_env().is_some())
                .filter_map(|a| a.get_long().map(|l| l.replace('-', "_")))
                .collect();
            bail!(
                "config file {}: `{key}`: `{}` has no flag --{flag}; its keys are: {}",
                path.display(),
                table_path.join(" "),
                known.join(", ")
            );
        };
        let Some(env) = arg.get_env() else {
            bail!(
                "config file {}: `{key}` cannot be set from a file; pass --{flag}",
                path.display()
            );
        };
        let env = env.to_string_lossy().into_owned();
        if std::env::var_os(&env).is_none() {
            out.push((env, value_text(&key, value)?));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(args: &[&str]) -> Vec<OsString> {
        std::iter::once("tessera")
            .chain(args.iter().copied())
            .map(OsString::from)
            .collect()
    }

    #[test]
    fn maps_keys_to_the_commands_environment_variables() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("tessera.toml");
        std::fs::write(
            &file,
            "data = \"/srv/tessera\"\nconcurrency = 4\n[serve]\nmax_in_flight = 64\nmetrics-listen = \"127.0.0.1:9100\"\n[ingest]\nconcurrency = 3\n",
        )?;
        let path = file.to_string_lossy().into_owned();
        let mut got = assignments(&argv(&["serve", "--config", &path]))?;
        got.sort();
        // The flag may come before the command too.
        let mut before = assignments(&argv(&["--config", &path, "serve"]))?;
        before.sort();
        assert_eq!(before, got);
        let want = [
            ("TESSERA_DATA", "/srv/tessera"),
            ("TESSERA_MAX_IN_FLIGHT", "64"),
            ("TESSERA_METRICS_LISTEN", "127.0.0.1:9100"),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .filter(|(k, _)| std::env::var_os(k).is_none())
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(got, want);

        std::fs::write(&file, "[serve]\nmax_inflight = 64\n")?;
        let err = assignments(&argv(&["serve", "--config", &path]))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("`serve.max_inflight`") && err.contains("max_in_flight"),
            "{err}"
        );

        std::fs::write(&file, "max_inflight = 64\n")?;
        let err = assignments(&argv(&["serve", "--config", &path]))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("no tessera command has a flag --max-inflight"),
            "{err}"
        );

        std::fs::write(&file, "[serve\n")?;
        assert!(assignments(&argv(&["serve", "--config", &path])).is_err());
        assert!(assignments(&argv(&["serve", "--config", "/nonexistent.toml"])).is_err());
        Ok(())
    }
}
