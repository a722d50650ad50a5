//! What the figures were measured on: date, CPU, kernel, load.

use std::time::{SystemTime, UNIX_EPOCH};

pub struct Machine {
    /// UTC, `2026-12-02 01:23`.
    pub date: String,
    pub cpu: String,
    pub cpus: usize,
    pub kernel: String,
    /// The 1, 5 and 15 minute load averages.
    pub load: String,
}

/// The civil date of a day count since 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

pub fn describe() -> Machine {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let secs = i64::try_from(secs).unwrap_or(0);
    let (y, mo, d) = civil(secs.div_euclid(86_400));
    let minute = secs.rem_euclid(86_400) / 60;
    let cpu = read("/proc/cpuinfo")
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|r| r.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    let load = read("/proc/loadavg")
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    Machine {
        date: format!(
            "{y:04}-{mo:02}-{d:02} {:02}:{:02} UTC",
            minute / 60,
            minute % 60
        ),
        cpu,
        cpus: super::placement::usable().len(),
        kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
        load,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn day_counts_become_civil_dates() {
        assert_eq!(super::civil(0), (1970, 1, 1));
        assert_eq!(super::civil(20_424), (2025, 12, 2));
        assert_eq!(super::civil(-1), (1969, 12, 31));
    }
}
