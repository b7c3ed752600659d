//! The rule language, file-driven (DataFusion's sqllogictest habit): every case file in
//! `tests/rules/cases/` is its own test, run through the real rule engine (the router's
//! decoder and `RuleSet::route`), so one failing case names itself and hides no other.
//! `cargo test --release --workspace -- array_index` runs one case.

use libtest_mimic::{Arguments, Failed, Trial};
use sluice_processors::rule::RuleSet;
use sluice_processors::rule_test::{case::case_files, run_case_file};
use std::path::{Path, PathBuf};

const CASES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/rules/cases");

fn main() {
    let args = Arguments::from_args();
    let files = case_files(Path::new(CASES)).expect("the rule cases folder");
    assert!(files.len() >= 30, "only {} case files", files.len());
    let mut trials: Vec<Trial> = files.into_iter().map(trial).collect();
    trials.push(Trial::test(
        "readme::rule_file_examples_compile",
        readme_rules,
    ));
    trials.push(Trial::test("readme::case_file_example_passes", readme_case));
    trials.push(Trial::test(
        "readme::config_example_rules_compile",
        readme_config_rules,
    ));
    libtest_mimic::run(&args, trials).exit();
}

/// README's fenced blocks of one language.
fn readme_blocks(lang: &str) -> Vec<String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    let fence = format!("```{lang}\n");
    readme
        .split(&fence)
        .skip(1)
        .filter_map(|rest| rest.split_once("```").map(|(block, _)| block.to_string()))
        .collect()
}

/// Every rule file shown in README compiles (`sluice rules check`).
fn readme_rules() -> Result<(), Failed> {
    let files: Vec<String> = readme_blocks("sql")
        .into_iter()
        .filter(|b| b.contains("-- name:"))
        .collect();
    if files.is_empty() {
        return Err("README shows no rule file".into());
    }
    for text in files {
        let rules = sluice_config::rule_files::parse_rule_file(Path::new("README.sql"), &text);
        if let Err(errors) = RuleSet::compile(&rules) {
            let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
            return Err(format!("{}\n{text}", errors.join("\n")).into());
        }
    }
    Ok(())
}

/// The `[[rules]]` of README's config examples compile (`sluice config check`; that the
/// snippets parse and name defined sinks is checked in the config crate).
fn readme_config_rules() -> Result<(), Failed> {
    let mut compiled = 0;
    for snippet in readme_blocks("toml") {
        let Ok(config) = sluice_config::Config::from_toml_str(&snippet) else {
            continue; // a case file, or a fragment: not a config
        };
        if config.rules.is_empty() {
            continue;
        }
        if let Err(errors) = RuleSet::compile(&config.rules) {
            let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
            return Err(format!("{}\n{snippet}", errors.join("\n")).into());
        }
        compiled += 1;
    }
    if compiled == 0 {
        return Err("README shows no config with rules".into());
    }
    Ok(())
}

/// README's case file passes against the shipped rule it names (`sluice rules test`).
fn readme_case() -> Result<(), Failed> {
    let case = readme_blocks("toml")
        .into_iter()
        .find(|b| b.contains("[[messages]]"))
        .ok_or("README shows no case file")?;
    let dir = std::env::temp_dir().join(format!("sluice-readme-case-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("cases"))?;
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/rules");
    copy_folder(Path::new(shipped), &dir.join("rules"))?;
    let file = dir.join("cases/readme.toml");
    std::fs::write(&file, case)?;
    let outcome = run(&file);
    std::fs::remove_dir_all(&dir)?;
    outcome
}

fn copy_folder(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let path = entry?.path();
        if let Some(name) = path.file_name() {
            std::fs::copy(&path, to.join(name))?;
        }
    }
    Ok(())
}

fn trial(file: PathBuf) -> Trial {
    let name = file
        .strip_prefix(CASES)
        .unwrap_or(&file)
        .with_extension("")
        .display()
        .to_string();
    Trial::test(format!("rule_case::{name}"), move || run(&file))
}

fn run(file: &Path) -> Result<(), Failed> {
    let report = run_case_file(file, &[]);
    if report.checks == 0 {
        return Err(format!("{} checks nothing", file.display()).into());
    }
    if report.failures.is_empty() {
        Ok(())
    } else {
        Err(report.failures.join("\n").into())
    }
}
