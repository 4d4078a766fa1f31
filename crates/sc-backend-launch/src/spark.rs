//! Finding Spark, Python and Java on this host, and building an engine's command line.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sc_backend_api::ProviderError;

use crate::spec::LaunchSpec;

/// The fix to suggest when no usable Spark is found.
const INSTALL_HINT: &str = "set backend_provider.spec.spark_home or SPARK_HOME, or pip install 'pyspark[connect]>=4.0' (scripts/setup-venv.sh does)";

/// The Spark installation an engine runs from, found once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SparkEnv {
    /// `SPARK_HOME`: holds `bin/spark-submit` and `jars/spark-connect_*.jar`.
    pub(crate) spark_home: PathBuf,
    /// Given to Spark as `PYSPARK_PYTHON`.
    pub(crate) python: PathBuf,
    /// `JAVA_HOME`, when known.
    pub(crate) java_home: Option<PathBuf>,
}

/// The values of an engine's placeholders.
#[derive(Debug, Clone)]
pub(crate) struct Vars<'a> {
    pub(crate) port: u16,
    pub(crate) host: &'a str,
    pub(crate) engine_id: &'a str,
    pub(crate) spark_home: Option<&'a Path>,
    pub(crate) work_dir: &'a Path,
    pub(crate) master: &'a str,
    pub(crate) ui_port: Option<u16>,
    pub(crate) profile: &'a str,
}

/// Whether an engine needs a Spark installation: the default command does, and so does a
/// custom one that names `{spark_home}`.
pub(crate) fn needs_spark(spec: &LaunchSpec) -> bool {
    match &spec.command {
        None => true,
        Some(command) => command.iter().any(|arg| arg.contains("{spark_home}")),
    }
}

/// Whether engines run with a Spark UI the proxy can reach: the default command when
/// `spark_ui` is on, a custom command that uses `{ui_port}`.
pub(crate) fn has_ui(spec: &LaunchSpec) -> bool {
    match &spec.command {
        None => spec.spark_ui,
        Some(command) => command.iter().any(|arg| arg.contains("{ui_port}")),
    }
}

/// The command template Spark's own Spark Connect server runs with (as
/// `scripts/spark-server.sh` starts it), on the profile's cluster manager in client deploy mode,
/// with the UI at `{ui_port}` behind the control plane's path when `ui`, then the profile's
/// configuration (the spec's `spark_conf` and settings, then the profile's).
pub(crate) fn default_command(conf: &BTreeMap<String, String>, ui: bool) -> Vec<String> {
    let mut argv: Vec<String> = [
        "{spark_home}/bin/spark-submit",
        "--class",
        "org.apache.spark.sql.connect.service.SparkConnectServer",
        "--name",
        "spark-connect-{engine_id}",
        "--master",
        "{master}",
        "--deploy-mode",
        "client",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    let mut all: BTreeMap<String, String> = [
        ("spark.connect.grpc.binding.port", "{port}"),
        ("spark.connect.grpc.binding.address", "{host}"),
        // Executors on a cluster reach the driver here.
        ("spark.driver.host", "{host}"),
        ("spark.ui.showConsoleProgress", "false"),
        ("spark.local.dir", "{work_dir}/tmp"),
        ("spark.sql.warehouse.dir", "{work_dir}/warehouse"),
        ("spark.sql.catalogImplementation", "in-memory"),
        ("spark.sql.shuffle.partitions", "4"),
        // A driver out of memory is in no state to serve: it exits, and its sessions learn why.
        (
            "spark.driver.extraJavaOptions",
            "-Djava.io.tmpdir={work_dir}/tmp -XX:+ExitOnOutOfMemoryError",
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    if ui {
        all.insert("spark.ui.enabled".into(), "true".into());
        all.insert("spark.ui.port".into(), "{ui_port}".into());
        all.insert(
            "spark.ui.proxyBase".into(),
            sc_backend_api::ui_proxy_base("{engine_id}"),
        );
    } else {
        all.insert("spark.ui.enabled".into(), "false".into());
    }
    for (key, value) in conf {
        match all.get_mut(key) {
            // The provider's own JVM options stay; the configured ones follow (and win).
            Some(ours) if key == "spark.driver.extraJavaOptions" => {
                ours.push(' ');
                ours.push_str(value);
            }
            _ => {
                all.insert(key.clone(), value.clone());
            }
        }
    }
    for (key, value) in all {
        argv.push("--conf".into());
        argv.push(format!("{key}={value}"));
    }
    argv.push("spark-internal".into());
    argv
}

/// Replaces the placeholders in every argument.
pub(crate) fn expand(template: &[String], vars: &Vars<'_>) -> Vec<String> {
    let port = vars.port.to_string();
    let ui_port = vars.ui_port.map(|p| p.to_string()).unwrap_or_default();
    let work_dir = vars.work_dir.to_string_lossy();
    let spark_home = vars
        .spark_home
        .map(|p| p.to_string_lossy())
        .unwrap_or_default();
    template
        .iter()
        .map(|arg| {
            arg.replace("{port}", &port)
                .replace("{ui_port}", &ui_port)
                .replace("{host}", vars.host)
                .replace("{engine_id}", vars.engine_id)
                .replace("{spark_home}", &spark_home)
                .replace("{work_dir}", &work_dir)
                .replace("{master}", vars.master)
                .replace("{profile}", vars.profile)
        })
        .collect()
}

/// Finds Spark, Python and Java as the spec says, and checks the Spark is one that has a Spark
/// Connect server. Errors say what is missing and how to fix it.
pub(crate) async fn resolve(spec: &LaunchSpec) -> Result<SparkEnv, ProviderError> {
    let python = python(spec);
    let spark_home = match spec
        .spark_home
        .clone()
        .or_else(|| non_empty_env("SPARK_HOME").map(PathBuf::from))
    {
        Some(home) => home,
        None => pyspark_dir(&python).await?,
    };
    check_spark_home(&spark_home)?;
    let java_home = java_home().ok_or_else(|| {
        ProviderError::Config(
            "no Java found for Spark: set JAVA_HOME or put java (17 or 21) on PATH".into(),
        )
    })?;
    Ok(SparkEnv {
        spark_home,
        python,
        java_home: Some(java_home),
    })
}

/// The Python to use: the `python` setting, `$VIRTUAL_ENV/bin/python`, `.venv/bin/python`,
/// `python3`.
pub(crate) fn python(spec: &LaunchSpec) -> PathBuf {
    if let Some(python) = &spec.python {
        return python.clone();
    }
    if let Some(venv) = non_empty_env("VIRTUAL_ENV") {
        return PathBuf::from(venv).join("bin/python");
    }
    let local = Path::new(".venv/bin/python");
    if local.exists() {
        return std::path::absolute(local).unwrap_or_else(|_| local.to_path_buf());
    }
    PathBuf::from("python3")
}

/// The directory of the pyspark package `python` imports.
async fn pyspark_dir(python: &Path) -> Result<PathBuf, ProviderError> {
    let no_spark = |why: String| {
        ProviderError::Config(format!(
            "no Spark found: {INSTALL_HINT} (asking {} for pyspark: {why})",
            python.display()
        ))
    };
    let mut command = tokio::process::Command::new(python);
    command
        .args([
            "-c",
            "import os, pyspark; print(os.path.dirname(pyspark.__file__))",
        ])
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let output = match tokio::time::timeout(Duration::from_secs(60), command.output()).await {
        Err(_) => return Err(no_spark("it did not answer within 60 s".into())),
        Ok(Err(e)) => return Err(no_spark(format!("cannot run it: {e}"))),
        Ok(Ok(output)) => output,
    };
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr.lines().rev().find(|l| !l.trim().is_empty());
        return Err(no_spark(last.unwrap_or("it failed").trim().to_owned()));
    }
    let dir = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if dir.is_empty() {
        return Err(no_spark("it printed nothing".into()));
    }
    Ok(PathBuf::from(dir))
}

/// Checks that `home` holds `bin/spark-submit` and a Spark Connect server jar.
pub(crate) fn check_spark_home(home: &Path) -> Result<(), ProviderError> {
    if !home.join("bin/spark-submit").is_file() {
        return Err(ProviderError::Config(format!(
            "no Spark found: {} has no bin/spark-submit; {INSTALL_HINT}",
            home.display()
        )));
    }
    let has_connect_jar = std::fs::read_dir(home.join("jars"))
        .map(|entries| {
            entries.filter_map(Result::ok).any(|e| {
                let name = e.file_name();
                let name = name.to_string_lossy();
                name.starts_with("spark-connect_") && name.ends_with(".jar")
            })
        })
        .unwrap_or(false);
    if !has_connect_jar {
        return Err(ProviderError::Config(format!(
            "the Spark in {} has no Spark Connect server (jars/spark-connect_*.jar): Spark Connect needs Spark or pyspark >= 4.0; {INSTALL_HINT}",
            home.display()
        )));
    }
    Ok(())
}

/// `JAVA_HOME` from the environment, else derived from `java` on `PATH` (the directory two
/// levels above the resolved binary).
pub(crate) fn java_home() -> Option<PathBuf> {
    if let Some(home) = non_empty_env("JAVA_HOME") {
        return Some(PathBuf::from(home));
    }
    let java = find_on_path("java")?;
    let real = std::fs::canonicalize(java).ok()?;
    Some(real.parent()?.parent()?.to_path_buf())
}

/// The first executable file named `program` in `PATH`.
pub(crate) fn find_on_path(program: &str) -> Option<PathBuf> {
    let path: OsString = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Whether `program` (an argv[0]) can be run: a path that exists, or a name found on `PATH`.
pub(crate) fn program_exists(program: &str) -> bool {
    if program.contains('/') {
        is_executable(Path::new(program))
    } else {
        find_on_path(program).is_some()
    }
}

fn non_empty_env(name: &str) -> Option<OsString> {
    std::env::var_os(name).filter(|v| !v.is_empty())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn vars<'a>(ui_port: Option<u16>) -> Vars<'a> {
        Vars {
            port: 15201,
            host: "127.0.0.1",
            engine_id: "engine-3",
            spark_home: Some(Path::new("/opt/spark")),
            work_dir: Path::new("/srv/engines/engine-3"),
            master: "spark://127.0.0.1:17077",
            ui_port,
            profile: "default",
        }
    }

    #[test]
    fn default_command_from_a_spark_home() {
        let conf: BTreeMap<String, String> = [
            ("spark.driver.memory".to_owned(), "2g".to_owned()),
            ("spark.a".to_owned(), "x y".to_owned()),
            ("spark.sql.shuffle.partitions".to_owned(), "64".to_owned()),
        ]
        .into();
        let argv = expand(&default_command(&conf, true), &vars(Some(15202)));
        let expected = [
            "/opt/spark/bin/spark-submit",
            "--class",
            "org.apache.spark.sql.connect.service.SparkConnectServer",
            "--name",
            "spark-connect-engine-3",
            "--master",
            "spark://127.0.0.1:17077",
            "--deploy-mode",
            "client",
            "--conf",
            "spark.a=x y",
            "--conf",
            "spark.connect.grpc.binding.address=127.0.0.1",
            "--conf",
            "spark.connect.grpc.binding.port=15201",
            "--conf",
            "spark.driver.extraJavaOptions=-Djava.io.tmpdir=/srv/engines/engine-3/tmp -XX:+ExitOnOutOfMemoryError",
            "--conf",
            "spark.driver.host=127.0.0.1",
            "--conf",
            "spark.driver.memory=2g",
            "--conf",
            "spark.local.dir=/srv/engines/engine-3/tmp",
            "--conf",
            "spark.sql.catalogImplementation=in-memory",
            "--conf",
            "spark.sql.shuffle.partitions=64",
            "--conf",
            "spark.sql.warehouse.dir=/srv/engines/engine-3/warehouse",
            "--conf",
            "spark.ui.enabled=true",
            "--conf",
            "spark.ui.port=15202",
            "--conf",
            "spark.ui.proxyBase=/control/backends/engine-3/ui",
            "--conf",
            "spark.ui.showConsoleProgress=false",
            "spark-internal",
        ];
        assert_eq!(argv, expected);
        let argv = expand(&default_command(&BTreeMap::new(), false), &vars(None));
        assert!(argv.contains(&"spark.ui.enabled=false".to_owned()));
        assert!(!argv.iter().any(|a| a.starts_with("spark.ui.port")));
    }

    #[test]
    fn expands_every_placeholder_in_a_custom_command() {
        let template: Vec<String> = [
            "sail",
            "--ip",
            "{host}",
            "--port={port}",
            "{engine_id}:{work_dir}:{spark_home}",
            "{master}/{profile}/{ui_port}",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect();
        let argv = expand(
            &template,
            &Vars {
                port: 7,
                host: "::1",
                engine_id: "engine-1",
                spark_home: None,
                work_dir: Path::new("/w/engine-1"),
                master: "local[2]",
                ui_port: Some(8),
                profile: "large",
            },
        );
        assert_eq!(
            argv,
            [
                "sail",
                "--ip",
                "::1",
                "--port=7",
                "engine-1:/w/engine-1:",
                "local[2]/large/8"
            ]
        );
        assert!(needs_spark(&LaunchSpec::default()));
        assert!(needs_spark(&LaunchSpec {
            command: Some(template.clone()),
            ..Default::default()
        }));
        assert!(!needs_spark(&LaunchSpec {
            command: Some(template[..4].to_vec()),
            ..Default::default()
        }));
    }

    #[test]
    fn spark_home_checks_name_the_problem_and_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let err = check_spark_home(dir.path()).unwrap_err().to_string();
        assert!(err.contains("no bin/spark-submit"), "{err}");
        assert!(err.contains("pip install 'pyspark[connect]>=4.0'"), "{err}");

        std::fs::create_dir_all(dir.path().join("bin")).unwrap();
        std::fs::create_dir_all(dir.path().join("jars")).unwrap();
        std::fs::write(dir.path().join("bin/spark-submit"), "#!/bin/sh\n").unwrap();
        std::fs::write(dir.path().join("jars/spark-core_2.13-3.5.0.jar"), "").unwrap();
        let err = check_spark_home(dir.path()).unwrap_err().to_string();
        assert!(err.contains("spark-connect_*.jar"), "{err}");
        assert!(err.contains(">= 4.0"), "{err}");

        std::fs::write(dir.path().join("jars/spark-connect_2.13-4.0.1.jar"), "").unwrap();
        check_spark_home(dir.path()).unwrap();
    }

    #[tokio::test]
    async fn a_python_without_pyspark_is_a_clear_error() {
        let spec = LaunchSpec {
            python: Some(PathBuf::from("/nonexistent/python")),
            spark_home: None,
            ..Default::default()
        };
        let err = pyspark_dir(&python(&spec)).await.unwrap_err().to_string();
        assert!(err.contains("no Spark found"), "{err}");
        assert!(err.contains("/nonexistent/python"), "{err}");
    }
}
