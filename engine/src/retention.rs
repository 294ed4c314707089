//! Grandfather-Father-Son retention as a pure function.
//!
//! The semantics are restic's: for each tier, walk the archives from newest to oldest and keep
//! the newest archive of each calendar period (UTC day, ISO week, month), for the newest N
//! periods that have an archive; periods without one do not count. One archive may fill several
//! tiers. `-1` keeps every period; `0` disables a tier; `last` keeps the N newest archives.
//! The newest archive is never removed, and a policy with every tier at 0 keeps everything.

use chrono::{DateTime, Datelike, NaiveDateTime, TimeZone, Utc};
use serde::Serialize;

use crate::config::Retention;

/// The `strftime` form of an archive's name (UTC), as thrum writes it.
pub const NAME_FORMAT: &str = "%Y-%m-%dT%H%M%S";

/// An archive the engine named: `YYYY-MM-DDTHHMMSS.zip`, or `...-N.zip` when several
/// archives fell in the same second.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct ArchiveName {
    /// When (UTC, whole seconds).
    pub time: DateTime<Utc>,
    /// 0 for the plain name, N for `-N`.
    pub seq: u32,
    /// The file name.
    pub name: String,
}

impl ArchiveName {
    /// Parse a file name; `None` for anything the engine did not name (including
    /// `pre-restore-*.zip`), which retention never touches.
    pub fn parse(file_name: &str) -> Option<Self> {
        let stem = file_name.strip_suffix(".zip")?;
        // `-N` with N >= 1 and no leading zero: every name has exactly one spelling.
        let (base, seq) = match stem.rsplit_once('-') {
            Some((b, n))
                if b.len() == 17
                    && !n.is_empty()
                    && !n.starts_with('0')
                    && n.bytes().all(|c| c.is_ascii_digit()) =>
            {
                (b, n.parse().ok()?)
            }
            _ => (stem, 0),
        };
        // Exactly `YYYY-MM-DDTHHMMSS` in ASCII digits: chrono's parser alone also accepts
        // whitespace between fields (found by fuzzing), and then a stranger's file would be
        // taken for an archive and could be pruned.
        let shape_ok = base.len() == 17
            && base.bytes().enumerate().all(|(i, b)| match i {
                4 | 7 => b == b'-',
                10 => b == b'T',
                _ => b.is_ascii_digit(),
            });
        if !shape_ok {
            return None;
        }
        let naive = NaiveDateTime::parse_from_str(base, NAME_FORMAT).ok()?;
        Some(Self {
            time: Utc.from_utc_datetime(&naive),
            seq,
            name: file_name.to_owned(),
        })
    }

    /// The file name for an archive taken at `time`, `seq` 0 being the plain name.
    pub fn format(time: DateTime<Utc>, seq: u32) -> String {
        let base = time.format(NAME_FORMAT);
        if seq == 0 {
            format!("{base}.zip")
        } else {
            format!("{base}-{seq}.zip")
        }
    }
}

/// Why an archive is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum Reason {
    /// One of the N newest archives.
    Last {
        /// Its rank, 1 = newest.
        rank: u32,
    },
    /// The newest archive of a day.
    Daily {
        /// `YYYY-MM-DD`.
        period: String,
    },
    /// The newest archive of an ISO week.
    Weekly {
        /// `YYYY-Www`.
        period: String,
    },
    /// The newest archive of a month.
    Monthly {
        /// `YYYY-MM`.
        period: String,
    },
    /// The newest archive is never removed.
    Newest,
    /// Every tier is 0: the policy keeps everything rather than deleting it all.
    KeepAll,
    /// Not a sound archive (it does not open, has no manifest, failed its checksums, or was
    /// archived from a damaged snapshot): kept, reported, and never counted for a tier, so
    /// it never displaces a sound one.
    Unsound {
        /// What is wrong with it.
        why: String,
    },
    /// The newest sound archive taken before the workspace shrank: kept until the shrink is
    /// accepted (`prune --accept-shrink`).
    BeforeShrink {
        /// What shrank.
        what: String,
    },
    /// An archive thrum made, kept by thrum's own rotation (the N newest, the oldest of each
    /// week and month): what thrum promised to keep is never removed by moving over.
    Thrum {
        /// thrum's rule: `daily`, `weekly YYYY-Www`, `monthly YYYY-MM`.
        thrum_rule: String,
    },
    /// A safety archive of a restore: one of the newest [`PRE_RESTORE_KEEP`], or younger
    /// than [`PRE_RESTORE_DAYS`] days.
    PreRestore {
        /// Which of the two.
        why: String,
    },
}

/// Safety archives of restores kept whatever their age: the newest this many.
pub const PRE_RESTORE_KEEP: usize = 5;
/// Safety archives of restores kept whatever their number: those younger than this (days).
pub const PRE_RESTORE_DAYS: i64 = 30;

/// The retention of the safety archives restore writes (`pre-restore-*.zip`, named by the
/// time of the restore): the newest [`PRE_RESTORE_KEEP`] and every one younger than
/// [`PRE_RESTORE_DAYS`] days are kept. `archives` carry their full file names.
pub fn pre_restore(archives: &[ArchiveName], now: DateTime<Utc>) -> Vec<Decision> {
    let mut sorted = archives.to_vec();
    sorted.sort_by(|a, b| b.cmp(a));
    sorted
        .into_iter()
        .enumerate()
        .map(|(i, archive)| {
            let mut reasons = Vec::new();
            if i < PRE_RESTORE_KEEP {
                reasons.push(Reason::PreRestore {
                    why: format!("one of the {PRE_RESTORE_KEEP} newest restores' safety archives"),
                });
            }
            if now - archive.time < chrono::Duration::days(PRE_RESTORE_DAYS) {
                reasons.push(Reason::PreRestore {
                    why: format!("a restore's safety archive younger than {PRE_RESTORE_DAYS} days"),
                });
            }
            Decision { archive, reasons }
        })
        .collect()
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::Last { rank } => write!(f, "last #{rank}"),
            Reason::Daily { period } => write!(f, "daily {period}"),
            Reason::Weekly { period } => write!(f, "weekly {period}"),
            Reason::Monthly { period } => write!(f, "monthly {period}"),
            Reason::Newest => f.write_str("newest archive"),
            Reason::KeepAll => f.write_str("all tiers are 0: keep everything"),
            Reason::Unsound { why } => write!(f, "not sound, never counted: {why}"),
            Reason::BeforeShrink { what } => {
                write!(
                    f,
                    "last good copy before a shrink ({what}); prune --accept-shrink"
                )
            }
            Reason::Thrum { thrum_rule } => write!(f, "thrum's rotation: {thrum_rule}"),
            Reason::PreRestore { why } => f.write_str(why),
        }
    }
}

/// The decision for one archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// The archive.
    pub archive: ArchiveName,
    /// Every rule that keeps it; empty means it is removed.
    pub reasons: Vec<Reason>,
}

impl Decision {
    /// Whether the archive is kept.
    pub fn keep(&self) -> bool {
        !self.reasons.is_empty()
    }
}

/// Decide which archives to keep, newest first in the result.
pub fn apply(archives: &[ArchiveName], policy: &Retention) -> Vec<Decision> {
    let mut sorted: Vec<ArchiveName> = archives.to_vec();
    sorted.sort_by(|a, b| b.cmp(a));
    let mut decisions: Vec<Decision> = sorted
        .into_iter()
        .map(|archive| Decision {
            archive,
            reasons: Vec::new(),
        })
        .collect();
    if decisions.is_empty() {
        return decisions;
    }
    let all_off =
        policy.daily == 0 && policy.weekly == 0 && policy.monthly == 0 && policy.last == 0;
    if all_off {
        for d in &mut decisions {
            d.reasons.push(Reason::KeepAll);
        }
        return decisions;
    }
    if policy.last != 0 {
        for (i, d) in decisions.iter_mut().enumerate() {
            if policy.last > 0 && i as i64 >= policy.last {
                break;
            }
            d.reasons.push(Reason::Last { rank: i as u32 + 1 });
        }
    }
    tier(
        &mut decisions,
        policy.daily,
        |t| t.format("%Y-%m-%d").to_string(),
        |period| Reason::Daily { period },
    );
    tier(
        &mut decisions,
        policy.weekly,
        |t| {
            let w = t.iso_week();
            format!("{}-W{:02}", w.year(), w.week())
        },
        |period| Reason::Weekly { period },
    );
    tier(
        &mut decisions,
        policy.monthly,
        |t| t.format("%Y-%m").to_string(),
        |period| Reason::Monthly { period },
    );
    if !decisions[0].keep() {
        decisions[0].reasons.push(Reason::Newest);
    }
    decisions
}

/// An archive as retention sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Its name.
    pub name: ArchiveName,
    /// Why it is not sound, if it is not.
    pub unsound: Option<String>,
    /// Made by thrum's own backup (its manifest names no engine).
    pub by_thrum: bool,
    /// Kept because it is the last good copy before a shrink: what shrank.
    pub before_shrink: Option<String>,
}

/// Decide which archives to keep, newest first: the GFS tiers over the sound archives only
/// ([`apply`]); unsound archives kept and never counted; the last good copy before a shrink
/// kept; archives thrum made kept where thrum's own rotation keeps them.
pub fn decide(candidates: &[Candidate], policy: &Retention) -> Vec<Decision> {
    let sound: Vec<ArchiveName> = candidates
        .iter()
        .filter(|c| c.unsound.is_none())
        .map(|c| c.name.clone())
        .collect();
    let mut decisions = apply(&sound, policy);
    for c in candidates.iter().filter(|c| c.unsound.is_some()) {
        decisions.push(Decision {
            archive: c.name.clone(),
            reasons: vec![Reason::Unsound {
                why: c.unsound.clone().unwrap_or_default(),
            }],
        });
    }
    let thrum = thrum_keeps(
        &candidates
            .iter()
            .map(|c| c.name.clone())
            .collect::<Vec<_>>(),
        policy,
    );
    for d in &mut decisions {
        let Some(c) = candidates.iter().find(|c| c.name == d.archive) else {
            continue;
        };
        if c.unsound.is_some() {
            continue;
        }
        if let Some(what) = &c.before_shrink {
            d.reasons.push(Reason::BeforeShrink { what: what.clone() });
        }
        if c.by_thrum
            && let Some(rule) = thrum.get(&c.name.name)
        {
            d.reasons.push(Reason::Thrum {
                thrum_rule: rule.clone(),
            });
        }
    }
    decisions.sort_by(|a, b| b.archive.cmp(&a.archive));
    decisions
}

/// What thrum v0.10.6's own rotation (`internal/backup/rotation.go`) keeps, by name: the
/// `daily` newest archives, the oldest archive of each of the newest `weekly` ISO weeks and
/// `monthly` months (-1: every month). thrum sees only plain names (`-N` names, which thrum
/// never writes, it never removes); a tier at 0 or below keeps nothing except monthly -1.
pub fn thrum_keeps(
    archives: &[ArchiveName],
    policy: &Retention,
) -> std::collections::BTreeMap<String, String> {
    let mut plain: Vec<&ArchiveName> = archives.iter().filter(|a| a.seq == 0).collect();
    plain.sort_by_key(|a| std::cmp::Reverse(a.time));
    let mut keep = std::collections::BTreeMap::new();
    if policy.daily > 0 {
        for a in plain.iter().take(policy.daily as usize) {
            keep.entry(a.name.clone())
                .or_insert_with(|| "daily".to_owned());
        }
    }
    let oldest_per = |period: &dyn Fn(&DateTime<Utc>) -> String| {
        let mut buckets: std::collections::BTreeMap<String, &ArchiveName> =
            std::collections::BTreeMap::new();
        for a in &plain {
            let key = period(&a.time);
            match buckets.get(&key) {
                Some(b) if b.time <= a.time => {}
                _ => {
                    buckets.insert(key, a);
                }
            }
        }
        // Newest period first.
        buckets.into_iter().rev().collect::<Vec<_>>()
    };
    if policy.weekly > 0 {
        let weeks = oldest_per(&|t| {
            let w = t.iso_week();
            format!("{}-W{:02}", w.year(), w.week())
        });
        for (week, a) in weeks.into_iter().take(policy.weekly as usize) {
            keep.entry(a.name.clone())
                .or_insert_with(|| format!("weekly {week}"));
        }
    }
    if policy.monthly != 0 {
        let months = oldest_per(&|t| t.format("%Y-%m").to_string());
        let limit = if policy.monthly > 0 {
            policy.monthly as usize
        } else {
            months.len()
        };
        for (month, a) in months.into_iter().take(limit) {
            keep.entry(a.name.clone())
                .or_insert_with(|| format!("monthly {month}"));
        }
    }
    keep
}

fn tier(
    decisions: &mut [Decision],
    count: i64,
    period_of: impl Fn(&DateTime<Utc>) -> String,
    reason: impl Fn(String) -> Reason,
) {
    if count == 0 {
        return;
    }
    let mut last_period: Option<String> = None;
    let mut filled = 0i64;
    for d in decisions.iter_mut() {
        if count > 0 && filled >= count {
            break;
        }
        let period = period_of(&d.archive.time);
        if last_period.as_deref() == Some(period.as_str()) {
            continue;
        }
        last_period = Some(period.clone());
        d.reasons.push(reason(period));
        filled += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn at(s: &str) -> ArchiveName {
        let t: DateTime<Utc> = s.parse().unwrap();
        ArchiveName::parse(&ArchiveName::format(t, 0)).unwrap()
    }

    fn policy(daily: i64, weekly: i64, monthly: i64, last: i64) -> Retention {
        Retention {
            daily,
            weekly,
            monthly,
            last,
        }
    }

    fn kept(decisions: &[Decision]) -> Vec<String> {
        decisions
            .iter()
            .filter(|d| d.keep())
            .map(|d| d.archive.name.clone())
            .collect()
    }

    fn series(start: &str, step: Duration, n: i64) -> Vec<ArchiveName> {
        let base: DateTime<Utc> = start.parse().unwrap();
        (0..n)
            .map(|i| {
                let t = base - step * i as i32;
                ArchiveName::parse(&ArchiveName::format(t, 0)).unwrap()
            })
            .collect()
    }

    #[test]
    fn names_round_trip_and_refuse_others() {
        let a = ArchiveName::parse("2026-02-27T120000.zip").unwrap();
        assert_eq!(a.time.to_rfc3339(), "2026-02-27T12:00:00+00:00");
        assert_eq!(a.seq, 0);
        let b = ArchiveName::parse("2026-02-27T120000-2.zip").unwrap();
        assert_eq!(b.seq, 2);
        assert!(b > a);
        for other in [
            "pre-restore-2026-02-28T091500.zip",
            "2026-02-27T120000.zip.tmp",
            "notes.zip",
            "2026-13-01T000000.zip",
            "2026-02-27T120000-.zip",
            "2026-02-27T120000-x.zip",
            "2026-02-27T120000-0.zip",
            "2026-02-27T120000-01.zip",
            // Found by the `names` fuzz target: chrono skips whitespace between fields.
            "\r6-\n\r6-\r6T\n9\r\n2\n9.zip",
            " 2026-02-27T12000.zip",
            "2026-02-27T12 000.zip",
            "+026-02-27T120000.zip",
        ] {
            assert_eq!(ArchiveName::parse(other), None, "{other}");
        }
    }

    // thrum's own scenarios (internal/backup/rotation_test.go).
    #[test]
    fn thrum_daily() {
        let a = series("2026-02-27T12:00:00Z", Duration::days(1), 7);
        assert_eq!(kept(&apply(&a, &policy(5, 0, 0, 0))).len(), 5);
    }

    #[test]
    fn thrum_weekly() {
        let a = series("2026-02-27T12:00:00Z", Duration::days(7), 8);
        assert_eq!(kept(&apply(&a, &policy(0, 4, 0, 0))).len(), 4);
    }

    #[test]
    fn thrum_monthly_forever() {
        let base: DateTime<Utc> = "2026-02-15T12:00:00Z".parse().unwrap();
        let a: Vec<_> = (0..12)
            .map(|i| {
                let t = base.checked_sub_months(chrono::Months::new(i)).unwrap();
                ArchiveName::parse(&ArchiveName::format(t, 0)).unwrap()
            })
            .collect();
        assert_eq!(kept(&apply(&a, &policy(0, 0, -1, 0))).len(), 12);
    }

    #[test]
    fn several_per_day_keep_the_newest_of_each_day() {
        let a = vec![
            at("2026-03-02T08:00:00Z"),
            at("2026-03-02T20:00:00Z"),
            at("2026-03-01T09:00:00Z"),
            at("2026-03-01T23:59:59Z"),
        ];
        let d = apply(&a, &policy(2, 0, 0, 0));
        assert_eq!(
            kept(&d),
            vec!["2026-03-02T200000.zip", "2026-03-01T235959.zip"]
        );
    }

    #[test]
    fn gaps_do_not_count_as_periods() {
        // Archives on the 1st, 5th and 20th: daily=3 keeps all three, whatever the gaps.
        let a = vec![
            at("2026-05-20T10:00:00Z"),
            at("2026-05-05T10:00:00Z"),
            at("2026-05-01T10:00:00Z"),
        ];
        assert_eq!(kept(&apply(&a, &policy(3, 0, 0, 0))).len(), 3);
    }

    #[test]
    fn iso_week_one_spans_the_year_end() {
        // 2025-12-29 (Mon) .. 2026-01-04 (Sun) is ISO week 2026-W01; 2025-12-28 is 2025-W52.
        let a = vec![
            at("2026-01-02T10:00:00Z"),
            at("2025-12-30T10:00:00Z"),
            at("2025-12-28T10:00:00Z"),
        ];
        let d = apply(&a, &policy(0, 2, 0, 0));
        assert_eq!(
            kept(&d),
            vec!["2026-01-02T100000.zip", "2025-12-28T100000.zip"]
        );
        assert_eq!(
            d[0].reasons,
            vec![Reason::Weekly {
                period: "2026-W01".into()
            }]
        );
        // ... while by month, 2025-12-30 is the newest of December.
        let d = apply(&a, &policy(0, 0, 2, 0));
        assert_eq!(
            kept(&d),
            vec!["2026-01-02T100000.zip", "2025-12-30T100000.zip"]
        );
    }

    #[test]
    fn one_archive_fills_several_tiers() {
        let a = vec![at("2026-04-30T10:00:00Z")];
        let d = apply(&a, &policy(1, 1, 1, 1));
        assert_eq!(d[0].reasons.len(), 4);
    }

    #[test]
    fn all_zero_keeps_everything() {
        let a = series("2026-02-27T12:00:00Z", Duration::days(1), 4);
        let d = apply(&a, &policy(0, 0, 0, 0));
        assert!(d.iter().all(|d| d.reasons == vec![Reason::KeepAll]));
    }

    #[test]
    fn last_keeps_n_newest() {
        let a = series("2026-02-27T12:00:00Z", Duration::hours(1), 5);
        let d = apply(&a, &policy(0, 0, 0, 2));
        assert_eq!(kept(&d).len(), 2);
        assert_eq!(d[0].reasons, vec![Reason::Last { rank: 1 }]);
    }

    #[test]
    fn same_second_archives_are_ordered_by_sequence() {
        let a = vec![
            ArchiveName::parse("2026-02-27T120000.zip").unwrap(),
            ArchiveName::parse("2026-02-27T120000-1.zip").unwrap(),
        ];
        let d = apply(&a, &policy(0, 0, 0, 1));
        assert_eq!(kept(&d), vec!["2026-02-27T120000-1.zip"]);
    }

    fn cand(name: &ArchiveName) -> Candidate {
        Candidate {
            name: name.clone(),
            unsound: None,
            by_thrum: false,
            before_shrink: None,
        }
    }

    #[test]
    fn junk_never_displaces_a_sound_archive() {
        // A real archive and, later the same day, a junk file with an archive's name.
        let real = at("2026-11-30T12:00:00Z");
        let junk = at("2026-11-30T23:59:59Z");
        let mut j = cand(&junk);
        j.unsound = Some("not a zip".into());
        let d = decide(&[cand(&real), j], &policy(5, 4, -1, 0));
        assert_eq!(d.len(), 2);
        assert!(d.iter().all(Decision::keep));
        assert!(matches!(d[0].reasons[0], Reason::Unsound { .. }));
        assert!(
            d[1].reasons
                .iter()
                .any(|r| matches!(r, Reason::Daily { .. }))
        );
    }

    #[test]
    fn thrums_archives_keep_what_thrum_promised() {
        // 90 daily archives thrum made, one a day at noon, 2026-03-01 .. 2026-05-29.
        let a = series("2026-05-29T12:00:00Z", Duration::days(1), 90);
        let p = policy(5, 4, -1, 0);
        let ours = kept(&apply(&a, &p));
        let thrums: Vec<Candidate> = a
            .iter()
            .map(|n| Candidate {
                by_thrum: true,
                ..cand(n)
            })
            .collect();
        let both = kept(&decide(&thrums, &p));
        // thrum keeps the oldest of each week and month: 2026-03-01 (its March archive, kept
        // forever) and Monday 2026-05-18 (its week 21), which ours alone would remove.
        for name in ["2026-03-01T120000.zip", "2026-05-18T120000.zip"] {
            assert!(!ours.contains(&name.to_owned()), "{name}");
            assert!(both.contains(&name.to_owned()), "{name}");
        }
        // What ours keeps stays kept.
        assert!(ours.iter().all(|n| both.contains(n)));
        // Our own archives are ours alone.
        let mine: Vec<Candidate> = a.iter().map(cand).collect();
        assert_eq!(kept(&decide(&mine, &p)), ours);
    }

    #[test]
    fn thrum_rotation_by_its_own_rules() {
        let a = vec![
            at("2026-03-10T12:00:00Z"), // Tue, week 11
            at("2026-03-09T12:00:00Z"), // Mon, week 11: oldest of the week
            at("2026-03-08T12:00:00Z"), // Sun, week 10
            at("2026-02-27T12:00:00Z"),
            ArchiveName::parse("2026-02-01T120000-1.zip").unwrap(), // thrum never sees -N
        ];
        let k = thrum_keeps(&a, &policy(1, 2, 1, 0));
        assert_eq!(k["2026-03-10T120000.zip"], "daily");
        assert_eq!(k["2026-03-09T120000.zip"], "weekly 2026-W11");
        assert_eq!(k["2026-03-08T120000.zip"], "weekly 2026-W10");
        // The oldest of March (the newest month) is 2026-03-08, already kept as weekly.
        assert_eq!(k.len(), 3, "{k:?}");
        // thrum's zeros keep nothing (ours keep everything).
        assert!(thrum_keeps(&a, &policy(0, 0, 0, 0)).is_empty());
    }

    #[test]
    fn safety_archives_keep_the_newest_five_and_the_last_thirty_days() {
        let now: DateTime<Utc> = "2026-11-30T12:00:00Z".parse().unwrap();
        let named = |t: DateTime<Utc>| {
            let mut a = ArchiveName::parse(&ArchiveName::format(t, 0)).unwrap();
            a.name = format!("pre-restore-{}", a.name);
            a
        };
        // Ten a day apart, and three older than a year.
        let mut a: Vec<_> = (0..10).map(|d| named(now - Duration::days(d))).collect();
        a.extend((400..403).map(|d| named(now - Duration::days(d))));
        let d = pre_restore(&a, now);
        assert_eq!(kept(&d).len(), 10);
        assert!(
            d.iter()
                .filter(|x| !x.keep())
                .all(|x| x.archive.time < now - Duration::days(399))
        );
        // Only old ones: the newest five stay.
        let old: Vec<_> = (400..410).map(|d| named(now - Duration::days(d))).collect();
        assert_eq!(kept(&pre_restore(&old, now)).len(), PRE_RESTORE_KEEP);
    }

    proptest::proptest! {
        #[test]
        fn unsound_and_protected_archives_never_change_what_the_sound_ones_keep(
            offsets in proptest::collection::vec((0i64..(2 * 365 * 24), 0u8..4), 1..50),
            daily in -1i64..4, weekly in -1i64..4, monthly in -1i64..4,
        ) {
            let base: DateTime<Utc> = "2027-01-01T00:00:00Z".parse().unwrap();
            let mut cands: Vec<Candidate> = Vec::new();
            for (h, kind) in &offsets {
                let name = ArchiveName::parse(&ArchiveName::format(base - Duration::hours(*h), 0)).unwrap();
                if cands.iter().any(|c| c.name == name) {
                    continue;
                }
                cands.push(Candidate {
                    unsound: (*kind == 1).then(|| "junk".to_owned()),
                    before_shrink: (*kind == 2).then(|| "a log".to_owned()),
                    by_thrum: *kind == 3,
                    ..cand(&name)
                });
            }
            let p = policy(daily, weekly, monthly, 0);
            let d = decide(&cands, &p);
            proptest::prop_assert_eq!(d.len(), cands.len());
            // Every unsound and every protected archive is kept.
            for c in &cands {
                let dec = d.iter().find(|x| x.archive == c.name).unwrap();
                if c.unsound.is_some() || c.before_shrink.is_some() {
                    proptest::prop_assert!(dec.keep());
                }
            }
            // The newest sound archive is kept.
            if let Some(newest) = cands.iter().filter(|c| c.unsound.is_none()).map(|c| &c.name).max() {
                proptest::prop_assert!(d.iter().find(|x| &x.archive == newest).unwrap().keep());
            }
            // The tiers see the sound archives alone.
            let sound: Vec<ArchiveName> = cands.iter().filter(|c| c.unsound.is_none()).map(|c| c.name.clone()).collect();
            for g in apply(&sound, &p) {
                let dec = d.iter().find(|x| x.archive == g.archive).unwrap();
                for r in &g.reasons {
                    proptest::prop_assert!(dec.reasons.contains(r));
                }
            }
        }

        #[test]
        fn never_removes_the_newest(
            offsets in proptest::collection::vec(0i64..(3 * 365 * 24), 1..60),
            daily in -1i64..4, weekly in -1i64..4, monthly in -1i64..4, last in -1i64..3,
        ) {
            let base: DateTime<Utc> = "2027-01-01T00:00:00Z".parse().unwrap();
            let mut archives: Vec<ArchiveName> = offsets.iter().map(|h| {
                ArchiveName::parse(&ArchiveName::format(base - Duration::hours(*h), 0)).unwrap()
            }).collect();
            archives.sort();
            archives.dedup();
            let d = apply(&archives, &policy(daily, weekly, monthly, last));
            proptest::prop_assert_eq!(d.len(), archives.len());
            proptest::prop_assert!(d[0].keep());
            proptest::prop_assert_eq!(&d[0].archive, archives.iter().max().unwrap());
            // A tier of N never keeps more than N archives by itself.
            if daily > 0 {
                let n = d.iter().filter(|x| x.reasons.iter().any(|r| matches!(r, Reason::Daily{..}))).count();
                proptest::prop_assert!(n as i64 <= daily);
            }
            // -1 on a tier keeps one archive for every period that has one.
            if monthly == -1 {
                let months: std::collections::BTreeSet<_> = archives.iter().map(|a| a.time.format("%Y-%m").to_string()).collect();
                let n = d.iter().filter(|x| x.reasons.iter().any(|r| matches!(r, Reason::Monthly{..}))).count();
                proptest::prop_assert_eq!(n, months.len());
            }
        }
    }
}
