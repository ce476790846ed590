//! Timestamps as the API writes them: ISO 8601 in UTC with milliseconds
//! (`2021-10-21T05:18:49.353Z`), and reading them back.

/// What the service writes for a time that never happened (an entity never accessed).
pub const NEVER: &str = "0001-01-01T00:00:00Z";

/// `unix_ms` as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn format_utc(unix_ms: i64) -> String {
    let secs = unix_ms.div_euclid(1_000);
    let millis = unix_ms.rem_euclid(1_000);
    let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
    let of_day = secs.rem_euclid(86_400);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        of_day / 3_600,
        of_day % 3_600 / 60,
        of_day % 60
    )
}

/// Reads an ISO 8601 date and time (`2021-10-21T05:18:49.353Z`, up to seven fraction
/// digits, `Z`, an offset such as `+02:00`, or no zone, read as UTC) as unix milliseconds;
/// `None` for [`NEVER`] (any time in the year 1, with or without the `Z`).
pub fn parse_utc(text: &str) -> Result<Option<i64>, String> {
    let invalid = || format!("'{text}' is not an ISO 8601 date and time");
    let text = text.trim();
    let (date, time) = text.split_once('T').ok_or_else(invalid)?;
    let mut date_parts = date.splitn(3, '-');
    let field = |parts: &mut std::str::SplitN<'_, char>| -> Result<i64, String> {
        parts
            .next()
            .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|p| p.parse().ok())
            .ok_or_else(invalid)
    };
    let (year, month, day) = (
        field(&mut date_parts)?,
        field(&mut date_parts)?,
        field(&mut date_parts)?,
    );
    if year <= 1 {
        return Ok(None);
    }
    let (clock, offset_minutes) = split_zone(time).ok_or_else(invalid)?;
    let (hms, fraction) = clock.split_once('.').unwrap_or((clock, ""));
    let mut clock_parts = hms.splitn(3, ':');
    let (hour, minute, second) = (
        field(&mut clock_parts)?,
        field(&mut clock_parts)?,
        field(&mut clock_parts)?,
    );
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
        || !fraction.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(invalid());
    }
    let millis: i64 = format!("{fraction:0<3}")[..3]
        .parse()
        .map_err(|_| invalid())?;
    let secs = days_from_civil(year, month, day) * 86_400 + hour * 3_600 + minute * 60 + second
        - offset_minutes * 60;
    Ok(Some(secs * 1_000 + millis))
}

/// The time of day and the zone's offset east of UTC in minutes.
fn split_zone(time: &str) -> Option<(&str, i64)> {
    if let Some(clock) = time.strip_suffix('Z') {
        return Some((clock, 0));
    }
    match time.rfind(['+', '-']) {
        Some(at) => {
            let (clock, zone) = time.split_at(at);
            let sign = if zone.starts_with('-') { -1 } else { 1 };
            let (hours, minutes) = zone[1..].split_once(':').unwrap_or((&zone[1..], "0"));
            let offset = hours.parse::<i64>().ok()? * 60 + minutes.parse::<i64>().ok()?;
            Some((clock, sign * offset))
        }
        None => Some((time, 0)),
    }
}

/// Days from 1970-01-01 to the proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let shifted_month = if month > 2 { month - 3 } else { month + 9 };
    let day_of_year = (153 * shifted_month + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(format_utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_utc(1_634_793_529_353), "2021-10-21T05:18:49.353Z");
        assert_eq!(format_utc(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(format_utc(1_798_761_599_999), "2026-12-31T23:59:59.999Z");
    }

    #[test]
    fn reads_what_it_writes_and_what_the_service_writes() {
        for ms in [0, 1_634_793_529_353, 951_782_400_000, 1_798_761_599_999] {
            assert_eq!(parse_utc(&format_utc(ms)), Ok(Some(ms)));
        }
        assert_eq!(
            parse_utc("2021-10-21T05:18:49.3530000Z"),
            Ok(Some(1_634_793_529_353))
        );
        assert_eq!(
            parse_utc("2021-10-21T07:18:49.353+02:00"),
            Ok(Some(1_634_793_529_353))
        );
        assert_eq!(
            parse_utc("2021-10-21T05:18:49"),
            Ok(Some(1_634_793_529_000))
        );
        assert_eq!(parse_utc(NEVER), Ok(None));
        assert_eq!(parse_utc("0001-01-01T00:00:00"), Ok(None));
        for bad in [
            "",
            "yesterday",
            "2021-13-01T00:00:00Z",
            "2021-10-21T25:00:00Z",
            "2021-10-21",
        ] {
            assert!(parse_utc(bad).is_err(), "{bad}");
        }
    }
}
