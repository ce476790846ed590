//! ISO 8601 durations as the API carries them (`PT1M`, `P1D`, `PT0.5S`), and .NET's
//! `TimeSpan.MaxValue` (`P10675199DT2H48M5.4775807S`) as "never". Clients send the maximum
//! slightly mangled (Python: `P10675199DT2H48M5.477539S`), so anything from about that many
//! days up counts as never.

use std::time::Duration;

/// How the API writes "never" (.NET's `TimeSpan.MaxValue`).
pub const INFINITE: &str = "P10675199DT2H48M5.4775807S";

/// Durations from this many days up mean "never".
const INFINITE_FROM_DAYS: u64 = 10_675_199;

const SECS_PER_DAY: u64 = 86_400;

/// Reads an ISO 8601 duration: `None` for "never" (or anything that long).
pub fn parse(text: &str) -> Result<Option<Duration>, String> {
    let invalid = || format!("'{text}' is not an ISO 8601 duration");
    let rest = text.trim().strip_prefix('P').ok_or_else(invalid)?;
    let (date, time) = match rest.split_once('T') {
        Some((date, time)) if !time.is_empty() => (date, Some(time)),
        Some(_) => return Err(invalid()),
        None => (rest, None),
    };
    if date.is_empty() && time.is_none() {
        return Err(invalid());
    }
    let mut nanos: u128 = 0;
    for (designators, part) in [("YMWD", date), ("HMS", time.unwrap_or(""))] {
        let mut number = String::new();
        let mut last_position = None;
        for c in part.chars() {
            if c.is_ascii_digit() || c == '.' || c == ',' {
                number.push(if c == ',' { '.' } else { c });
                continue;
            }
            let position = designators.find(c).ok_or_else(invalid)?;
            if number.is_empty() || last_position.is_some_and(|last| position <= last) {
                return Err(invalid());
            }
            last_position = Some(position);
            let unit_secs: u128 = match (designators, c) {
                ("YMWD", 'Y') => 365 * u128::from(SECS_PER_DAY),
                ("YMWD", 'M') => 30 * u128::from(SECS_PER_DAY),
                ("YMWD", 'W') => 7 * u128::from(SECS_PER_DAY),
                ("YMWD", _) => u128::from(SECS_PER_DAY),
                (_, 'H') => 3_600,
                (_, 'M') => 60,
                _ => 1,
            };
            nanos = nanos.saturating_add(scaled_nanos(&number, unit_secs).ok_or_else(invalid)?);
            number.clear();
        }
        if !number.is_empty() {
            return Err(invalid());
        }
    }
    if nanos >= u128::from(INFINITE_FROM_DAYS * SECS_PER_DAY) * 1_000_000_000 {
        return Ok(None);
    }
    let secs = u64::try_from(nanos / 1_000_000_000).map_err(|_| invalid())?;
    let sub = u32::try_from(nanos % 1_000_000_000).map_err(|_| invalid())?;
    Ok(Some(Duration::new(secs, sub)))
}

/// `number` (decimal, maybe with a fraction) times `unit_secs`, in nanoseconds.
fn scaled_nanos(number: &str, unit_secs: u128) -> Option<u128> {
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let mut nanos = whole.checked_mul(unit_secs)?.checked_mul(1_000_000_000)?;
    // Nine digits of fraction are all a nanosecond count can hold.
    let digits: String = fraction.chars().take(9).collect();
    if !digits.is_empty() {
        let scale = 10u128.pow(u32::try_from(digits.len()).ok()?);
        let fraction: u128 = digits.parse().ok()?;
        nanos = nanos.checked_add(fraction * unit_secs * 1_000_000_000 / scale)?;
    }
    Some(nanos)
}

/// Writes a duration the way the service does (`PT1M`, `P1DT2H`, `PT0.5S`), "never" as
/// [`INFINITE`].
pub fn format(duration: Option<Duration>) -> String {
    let Some(duration) = duration else {
        return INFINITE.to_owned();
    };
    let total = duration.as_secs();
    let (days, hours, minutes, seconds) = (
        total / SECS_PER_DAY,
        total % SECS_PER_DAY / 3_600,
        total % 3_600 / 60,
        total % 60,
    );
    let mut text = String::from("P");
    if days > 0 {
        text.push_str(&format!("{days}D"));
    }
    let nanos = duration.subsec_nanos();
    if hours == 0 && minutes == 0 && seconds == 0 && nanos == 0 {
        if days == 0 {
            text.push_str("T0S");
        }
        return text;
    }
    text.push('T');
    if hours > 0 {
        text.push_str(&format!("{hours}H"));
    }
    if minutes > 0 {
        text.push_str(&format!("{minutes}M"));
    }
    if seconds > 0 || nanos > 0 {
        text.push_str(&seconds.to_string());
        if nanos > 0 {
            let fraction = format!("{nanos:09}");
            text.push('.');
            text.push_str(fraction.trim_end_matches('0'));
        }
        text.push('S');
    }
    text
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_clients_send() {
        let secs = |s| Some(Duration::from_secs(s));
        assert_eq!(parse("PT1M").unwrap(), secs(60));
        assert_eq!(parse("PT45S").unwrap(), secs(45));
        assert_eq!(parse("P1D").unwrap(), secs(86_400));
        assert_eq!(parse("PT2H").unwrap(), secs(7_200));
        assert_eq!(parse("P1DT1H1M1S").unwrap(), secs(90_061));
        assert_eq!(parse("PT0.5S").unwrap(), Some(Duration::from_millis(500)));
        assert_eq!(parse(INFINITE).unwrap(), None);
        assert_eq!(parse("P10675199DT2H48M5.477539S").unwrap(), None);
        assert_eq!(parse("P99999999D").unwrap(), None);
        for bad in [
            "", "P", "PT", "1M", "PTM", "PT1X", "P1H", "PT1S1M", "00:01:00", "-PT1M",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn writes_the_service_form() {
        for (secs, text) in [
            (60, "PT1M"),
            (45, "PT45S"),
            (86_400, "P1D"),
            (90_061, "P1DT1H1M1S"),
            (0, "PT0S"),
            (600, "PT10M"),
        ] {
            assert_eq!(format(Some(Duration::from_secs(secs))), text);
            assert_eq!(parse(text).unwrap(), Some(Duration::from_secs(secs)));
        }
        assert_eq!(format(Some(Duration::from_millis(1_500))), "PT1.5S");
        assert_eq!(format(None), INFINITE);
    }
}
