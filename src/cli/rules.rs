//! `sluice config check`, `sluice rules check` and `sluice rules test`: the checks a data
//! engineer runs in CI, without starting anything.

use sluice_config::{Config, RuleConfig};
use sluice_processors::rule::RuleSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum RulesCommand {
    /// Compile rule files (`.sql`, or directories of them); report every problem with its
    /// file and line/column; exit non-zero if any.
    Check {
        /// Rule files or directories.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Config whose sinks the rules' actions must name (default: config/sluice.toml if
        /// present; without one, actions are not checked).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Run rule files (new or changed) on the latest records of the raw topic, read-only:
    /// print each rule's rows and, for a changed rule, how they differ from the running one's.
    Preview(super::preview::PreviewArgs),
    /// Run rule test cases (`*.toml` under --cases) through the rule engine; print a diff for
    /// every mismatch; exit non-zero if any case fails.
    Test {
        /// Rule files or directories (cases may also name their own rules).
        paths: Vec<PathBuf>,
        /// A case file or a folder of them (`*.toml`: messages in, expected rows out).
        #[arg(long)]
        cases: PathBuf,
    },
}

#[derive(clap::Subcommand)]
pub enum ConfigCommand {
    /// Report every problem in a config file (keys and rules) and exit non-zero if any.
    Check {
        /// The config file (`sluice.toml`); its rule files are checked too.
        file: PathBuf,
    },
}

/// `sluice config check`.
pub fn config(command: ConfigCommand) -> ExitCode {
    let ConfigCommand::Check { file } = command;
    let problems = config_problems(&file);
    super::exit(report(&file.display().to_string(), &problems))
}

/// `sluice rules check`, `sluice rules test` and `sluice rules preview`.
pub async fn rules(command: RulesCommand) -> anyhow::Result<ExitCode> {
    Ok(match command {
        RulesCommand::Preview(args) => super::preview::exec(args).await?,
        RulesCommand::Check { paths, config } => {
            let default = PathBuf::from("config/sluice.toml");
            let config = config.or_else(|| default.exists().then_some(default));
            let problems = rule_problems(config.as_deref(), &paths);
            super::exit(report("rules", &problems))
        }
        RulesCommand::Test { paths, cases } => super::exit(run_tests(&paths, &cases)),
    })
}

/// Every problem in a config file: keys, rule files, rule headers and rule SQL, at once.
pub fn config_problems(file: &Path) -> Vec<String> {
    let (config, read_errors) = match sluice_config::load_unvalidated(file) {
        Ok(c) => c,
        Err(errs) => return errs.0.iter().map(ToString::to_string).collect(),
    };
    let mut errors = read_errors;
    if let Err(errs) = config.validate() {
        errors.extend(errs.0);
    }
    if let Ok(text) = std::fs::read_to_string(file) {
        sluice_config::locate(&text, &mut errors);
    }
    let mut problems: Vec<String> = errors.iter().map(ToString::to_string).collect();
    problems.extend(sql_problems(&config.rules));
    if let Err(e) = sluice_kafka::check_client_config(&config) {
        problems.push(format!(
            "kafka: the Kafka client cannot use these settings: {e}"
        ));
    }
    problems
}

/// Problems in the rule files at `paths`, with their actions checked against the sinks of
/// `config` (when there is one).
pub fn rule_problems(config: Option<&Path>, paths: &[PathBuf]) -> Vec<String> {
    let (rules, read_errors) = sluice_config::rule_files::load_rule_paths(Path::new(""), paths);
    let mut problems: Vec<String> = read_errors.iter().map(ToString::to_string).collect();
    let mut base = match config.map(sluice_config::load_unvalidated) {
        Some(Ok((c, _))) => c,
        Some(Err(errs)) => {
            problems.extend(errs.0.iter().map(ToString::to_string));
            Config::default()
        }
        None => Config::default(),
    };
    base.rules = rules;
    let check_sinks = config.is_some();
    problems.extend(
        base.rule_problems(check_sinks)
            .iter()
            .map(ToString::to_string),
    );
    problems.extend(sql_problems(&base.rules));
    problems
}

fn sql_problems(rules: &[RuleConfig]) -> Vec<String> {
    match RuleSet::compile(rules) {
        Ok(_) => vec![],
        Err(errs) => errs.iter().map(ToString::to_string).collect(),
    }
}

/// Prints problems (or "ok") for `what`; returns whether there were none.
pub fn report(what: &str, problems: &[String]) -> bool {
    for p in problems {
        println!("{p}");
    }
    if problems.is_empty() {
        println!("{what}: ok");
    } else {
        println!("{what}: {} problem(s)", problems.len());
    }
    problems.is_empty()
}

/// Runs every case under `cases` with the rules at `paths`; prints one line per case and the
/// diffs of failing ones. Returns whether all passed.
pub fn run_tests(paths: &[PathBuf], cases: &Path) -> bool {
    let (rules, read_errors) = sluice_config::rule_files::load_rule_paths(Path::new(""), paths);
    if !report_read_errors(&read_errors) {
        return false;
    }
    let files = match sluice_processors::rule_test::case::case_files(cases) {
        Ok(f) if !f.is_empty() => f,
        Ok(_) => {
            println!("{}: no *.toml case files", cases.display());
            return false;
        }
        Err(e) => {
            println!("{e}");
            return false;
        }
    };
    let (mut passed, mut failed) = (0, 0);
    for file in &files {
        let report = sluice_processors::rule_test::run_case_file(file, &rules);
        if report.failures.is_empty() {
            passed += 1;
            println!("ok   {} ({} check(s))", file.display(), report.checks);
        } else {
            failed += 1;
            println!("FAIL {}", file.display());
            for f in &report.failures {
                println!("     {f}");
            }
        }
    }
    println!("rule tests: {passed} passed, {failed} failed");
    failed == 0
}

fn report_read_errors(errors: &[sluice_config::ConfigError]) -> bool {
    for e in errors {
        println!("{e}");
    }
    errors.is_empty()
}
