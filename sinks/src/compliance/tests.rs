use super::fleet::*;
use sluice_config::{DeploymentConfig, DeploymentStatus, UpdateConfig};

fn update(id: &str, version: &str, models: &[&str]) -> UpdateConfig {
    UpdateConfig {
        id: id.into(),
        version: version.into(),
        models: models.iter().map(|m| m.to_string()).collect(),
    }
}

fn report(device: &str, model: &str, version: &str, group: &str) -> Report {
    Report {
        device: device.into(),
        model: Some(model.into()),
        version: Some(version.into()),
        group: Some(group.into()),
        ..Report::default()
    }
}

fn fleet() -> Fleet {
    let mut f = Fleet {
        default_group: "default".into(),
        ..Fleet::default()
    };
    for u in [
        update("cam-1.9", "1.9", &["cam"]),
        update("cam-1.10", "1.10", &["cam"]),
        update("gw-2.0", "2.0", &["gw"]),
    ] {
        f.catalog.insert(u.id.clone(), u);
    }
    f.deployments.insert(
        "dep-a".into(),
        DeploymentConfig {
            id: "dep-a".into(),
            group: "a".into(),
            update: "cam-1.10".into(),
            status: DeploymentStatus::Active,
        },
    );
    f
}

fn state(f: &Fleet, device: &str) -> UpdateState {
    f.evaluate(device, &f.devices[device]).state
}

#[test]
fn the_latest_is_the_highest_compatible_version_of_all_updates_compared_as_numbers() {
    let mut f = fleet();
    f.observe(report("c1", "cam", "1.10", "b"));
    f.observe(report("c2", "cam", "1.9", "b"));
    f.observe(report("g1", "gw", "2.0.0", "b"));
    f.observe(report("x1", "other", "0.1", "b"));
    assert_eq!(state(&f, "c1"), UpdateState::OnLatestUpdate);
    assert_eq!(state(&f, "c2"), UpdateState::NewUpdatesAvailable);
    assert_eq!(state(&f, "g1"), UpdateState::OnLatestUpdate);
    assert_eq!(
        state(&f, "x1"),
        UpdateState::OnLatestUpdate,
        "nothing applies to it"
    );
}

#[test]
fn an_active_deployment_of_the_latest_makes_it_in_progress_unless_it_failed_or_was_cancelled() {
    let mut f = fleet();
    f.observe(report("c1", "cam", "1.9", "a"));
    assert_eq!(state(&f, "c1"), UpdateState::UpdateInProgress);
    f.observe(Report {
        device: "c1".into(),
        deployment: Some("dep-a".into()),
        deployment_state: Some("failed".into()),
        ..Report::default()
    });
    assert_eq!(state(&f, "c1"), UpdateState::NewUpdatesAvailable);
    let r = f.report();
    assert_eq!(r.failed.len(), 1);
    assert_eq!(
        (r.failed[0].deployment.as_str(), r.failed[0].group.as_str()),
        ("dep-a", "a")
    );
    f.observe(report("c2", "cam", "1.9", "a"));
    f.deployments.get_mut("dep-a").unwrap().status = DeploymentStatus::Cancelled;
    assert_eq!(state(&f, "c2"), UpdateState::NewUpdatesAvailable);
}

#[test]
fn a_deployment_of_an_older_update_is_not_progress_towards_the_latest() {
    let mut f = fleet();
    f.deployments.get_mut("dep-a").unwrap().update = "cam-1.9".into();
    f.observe(report("c1", "cam", "1.8", "a"));
    assert_eq!(state(&f, "c1"), UpdateState::NewUpdatesAvailable);
}

#[test]
fn counts_per_group_exclude_retired_devices_and_a_new_update_flips_on_latest() {
    let mut f = fleet();
    f.observe(report("c1", "cam", "1.10", "b"));
    f.observe(report("c2", "cam", "1.10", "b"));
    f.observe(report("c3", "cam", "1.9", "b"));
    f.retired.insert("c3".into());
    let r = f.report();
    assert_eq!(r.groups["b"].devices, 2);
    assert_eq!(r.groups["b"].compliance_percent, 100.0);
    f.catalog
        .insert("cam-1.11".into(), update("cam-1.11", "1.11", &["cam"]));
    let r = f.report();
    assert_eq!(r.groups["b"].new_updates_available, 2);
    assert_eq!(r.total.compliance_percent, 0.0);
}

fn failed_report(device: &str, deployment: &str, state: &str) -> Report {
    Report {
        device: device.into(),
        deployment: Some(deployment.into()),
        deployment_state: Some(state.into()),
        ..Report::default()
    }
}

fn devices(l: &super::gauges::Labelled) -> BTreeMap<String, u64> {
    l.groups
        .iter()
        .map(|(g, c)| (g.clone(), c.devices))
        .collect()
}

use std::collections::BTreeMap;

#[test]
fn a_device_that_changes_group_leaves_its_old_group_and_the_groups_add_up() {
    let mut f = fleet();
    let mut gauges = super::gauges::ComplianceGauges::new("s", 100, ["a".to_string()]);
    for (d, g) in [("c1", "a"), ("c2", "a"), ("c3", "b"), ("c4", "old")] {
        f.observe(report(d, "cam", "1.9", g));
    }
    let before = gauges.labelled(&f.report());
    assert_eq!(devices(&before).values().sum::<u64>(), 4);
    f.observe(report("c4", "cam", "1.9", "b"));
    let after = gauges.labelled(&f.report());
    let expect: BTreeMap<String, u64> =
        [("a".to_string(), 2), ("b".into(), 2), ("old".into(), 0)].into();
    assert_eq!(devices(&after), expect, "the emptied group is set to 0");
    assert_eq!(after.groups["old"].compliance_percent, 100.0);
    let next = gauges.labelled(&f.report());
    assert!(!next.groups.contains_key("old"), "zeroed once, then left");
}

#[test]
fn a_failed_device_that_recovers_is_no_longer_counted_as_failed() {
    let mut f = fleet();
    let mut gauges = super::gauges::ComplianceGauges::new("s", 100, ["a".to_string()]);
    f.observe(report("c1", "cam", "1.9", "a"));
    f.observe(failed_report("c1", "dep-a", "failed"));
    let key = ("dep-a".to_string(), "a".to_string());
    assert_eq!(gauges.labelled(&f.report()).failed[&key], 1);
    f.observe(failed_report("c1", "dep-a", "succeeded"));
    assert_eq!(gauges.labelled(&f.report()).failed[&key], 0);
}

#[test]
fn an_unknown_deployment_id_is_not_a_failed_deployment() {
    let mut f = fleet();
    f.observe(report("c1", "cam", "1.9", "a"));
    f.observe(failed_report("c1", "dep-made-up", "failed"));
    assert!(f.report().failed.is_empty());
}

#[test]
fn groups_past_the_label_limit_are_counted_under_one_overflow_label() {
    let mut f = fleet();
    let mut gauges = super::gauges::ComplianceGauges::new("s", 3, ["a".to_string()]);
    f.observe(report("in-a", "cam", "1.9", "a"));
    for i in 0..50 {
        f.observe(report(&format!("d{i}"), "cam", "1.9", &format!("g{i:02}")));
    }
    let l = gauges.labelled(&f.report());
    assert_eq!(l.groups.len(), 1 + 3 + 1, "pinned + limit + overflow");
    assert_eq!(l.groups[super::gauges::OVERFLOW].devices, 47);
    assert_eq!(devices(&l).values().sum::<u64>(), 51);
    assert_eq!(l.groups["g00"].devices, 1, "first come keep their label");
}

/// #24.6: device ids come from the fleet; past `max_devices` a new device is refused, while
/// the devices tracked go on updating.
#[test]
fn g6_a_new_device_past_max_devices_is_refused_and_known_ones_still_update() {
    let mut f = fleet();
    f.max_devices = 2;
    assert_eq!(f.observe(report("a", "cam", "1.9", "g")), Observed::Added);
    assert_eq!(f.observe(report("b", "cam", "1.9", "g")), Observed::Added);
    assert_eq!(f.observe(report("c", "cam", "1.9", "g")), Observed::Refused);
    assert_eq!(
        f.observe(report("a", "cam", "1.10", "g")),
        Observed::Updated
    );
    assert_eq!(f.devices.len(), 2);
    assert_eq!(f.devices["a"].version.as_deref(), Some("1.10"));
}

/// #24.6: a device silent past the age is forgotten, counted in the report, and tracked
/// anew when it reports again.
#[test]
fn g6_devices_silent_past_the_age_are_forgotten_counted_and_can_come_back() {
    let mut f = fleet();
    let at = |device: &str, seen_ms: i64, partition: i32| Report {
        seen_ms,
        partition: Some(partition),
        ..report(device, "cam", "1.9", "g")
    };
    f.observe(at("old", 1_000, 3));
    f.observe(at("new", 9_000, 1));
    assert_eq!(f.forget_silent(5_000), vec![("old".to_string(), Some(3))]);
    let r = f.report();
    assert_eq!((r.total.devices, r.forgotten), (1, 1));
    assert_eq!(f.observe(at("old", 10_000, 3)), Observed::Added);
    assert_eq!(f.report().total.devices, 2);
}

/// #24.6: with the changelog holding the devices, the state file keeps catalog, deployments
/// and retirements only: its size does not follow the fleet's.
#[test]
fn g6_the_state_file_without_devices_does_not_grow_with_the_fleet() {
    let mut f = fleet();
    let empty = f.to_json_without_devices().unwrap().len();
    for i in 0..10_000 {
        f.observe(report(&format!("d{i}"), "cam", "1.9", "g"));
    }
    assert_eq!(f.to_json_without_devices().unwrap().len(), empty);
    assert_eq!(f.devices.len(), 10_000, "the inventory itself is untouched");
    assert_eq!(f.counts().total.devices, 10_000);
    assert!(f.counts().devices.is_empty(), "counts list no devices");
}

#[test]
fn a_death_marks_the_device_offline_until_it_reports_again() {
    let mut f = fleet();
    let seen = |online: Option<bool>, seen_ms: i64| Report {
        online,
        seen_ms,
        ..report("edge-1", "gw", "2.0", "a")
    };
    f.observe(seen(Some(true), 10));
    assert_eq!(
        f.evaluate("edge-1", &f.devices["edge-1"]).online,
        Some(true)
    );
    f.observe(seen(Some(false), 20));
    f.observe(seen(None, 25));
    assert_eq!(
        f.evaluate("edge-1", &f.devices["edge-1"]).online,
        Some(false)
    );
    f.observe(seen(Some(true), 30));
    assert_eq!(
        f.evaluate("edge-1", &f.devices["edge-1"]).online,
        Some(true)
    );
    f.observe(report("cam-9", "cam", "1.9", "a"));
    assert_eq!(f.evaluate("cam-9", &f.devices["cam-9"]).online, None);
}
