//! The usage table: one item per client key and month (`pk` = `<client>#<YYYY-MM>`),
//! holding the month's spend, requests and tokens (`month_usd`, `month_requests`,
//! `month_tokens`: what the deployer's `usage` command reports), the current day's
//! spend, and the current minute's requests and tokens. The day and minute are fixed windows named in the item
//! (`day`, `minute`): the first request of a new window starts its counters again.
//! Items expire a month after theirs ends (`expires_at`, the table's TTL attribute).
//!
//! Every write is one `UpdateItem`. The usual reservation is one call: counters added,
//! on condition that the windows are still the current ones and every counter stays
//! within its limit. Only a window's first request (or a race with another one) needs
//! a second call, chosen from the item the failed condition returns.
//!
//! Conditions compare a counter with a threshold the function computes (`limit -
//! amount`): DynamoDB condition expressions can compare but cannot add, so
//! `counter + :amount <= :limit` is not expressible, and computing the threshold here
//! keeps the whole check in the one conditional write, atomic across every Lambda
//! instance.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};

/// How many times a write is tried again after losing a race with another instance
/// (each loss means another request moved a window on; more is no longer a race).
const MAX_TRIES: usize = 6;

/// Longest wait for one DynamoDB call (all its SDK retries included), so a slow table
/// fails closed within a request's patience.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(3);

/// The windows a moment falls in, all UTC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Windows {
    /// `YYYY-MM`: the item's month.
    pub month: String,
    /// `YYYY-MM-DD`.
    pub day: String,
    /// Minutes since the Unix epoch.
    pub minute: u64,
    /// Seconds left in the minute, the day and the month (for `retry-after` and the
    /// `x-ratelimit-reset-*` headers).
    pub minute_left: u64,
    pub day_left: u64,
    pub month_left: u64,
    /// When the month's item may go: a month after the month ends.
    pub expires_at: u64,
}

impl Windows {
    pub fn at(unix_secs: u64) -> Self {
        let days = unix_secs / 86_400;
        let (year, month, day) = civil_from_days(days);
        let (next_year, next_month) = if month == 12 {
            (year + 1, 1)
        } else {
            (year, month + 1)
        };
        let month_end = days_from_civil(next_year, next_month, 1) * 86_400;
        Self {
            month: format!("{year:04}-{month:02}"),
            day: format!("{year:04}-{month:02}-{day:02}"),
            minute: unix_secs / 60,
            minute_left: 60 - unix_secs % 60,
            day_left: 86_400 - unix_secs % 86_400,
            month_left: month_end - unix_secs,
            expires_at: month_end + 31 * 86_400,
        }
    }

    pub fn now() -> Self {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Self::at(secs)
    }
}

/// (year, month, day) of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// The day count since 1970-01-01 of a date (the inverse of [`civil_from_days`]).
fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year / 400;
    let yoe = year - era * 400;
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A client's counters in its current windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counters {
    pub requests: u64,
    pub tokens: u64,
    pub day_usd: u64,
    pub month_usd: u64,
}

/// The most each counter may hold *before* a reservation for it to fit: the limit
/// minus what the reservation adds. `None`: that counter has no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Thresholds {
    pub requests: Option<u64>,
    pub tokens: Option<u64>,
    pub day_usd: Option<u64>,
    pub month_usd: Option<u64>,
}

impl Thresholds {
    fn usd_within(&self, c: &Counters) -> bool {
        self.day_usd.is_none_or(|t| c.day_usd <= t) && self.month_usd.is_none_or(|t| c.month_usd <= t)
    }

    fn within(&self, c: &Counters) -> bool {
        self.usd_within(c)
            && self.requests.is_none_or(|t| c.requests <= t)
            && self.tokens.is_none_or(|t| c.tokens <= t)
    }
}

/// What a reservation adds: one request (none for a further attempt of a request already
/// counted), its worst-case tokens and cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reservation {
    pub requests: u64,
    pub tokens: u64,
    pub usd: u64,
}

#[derive(Debug)]
pub enum Reserved {
    /// Counted; the counters after it.
    Counted(Counters),
    /// A limit is reached; the counters that reach it.
    Refused(Counters),
}

/// The table could not be written (unreachable, throttled, refused): the caller fails
/// closed.
#[derive(Debug, thiserror::Error)]
#[error("usage table {table}: {reason}")]
pub struct LedgerError {
    pub table: String,
    pub reason: String,
}

#[derive(Clone, Debug)]
pub struct Ledger {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

/// The item as a failed condition returned it.
struct Item {
    day: Option<String>,
    minute: Option<u64>,
    counters: Counters,
}

/// The next write of a reservation, chosen from the item as last seen.
enum Step {
    /// Same windows: add to every counter.
    Add,
    /// No item yet this month.
    Create,
    /// A new day (and so a new minute): the day and minute counters start again.
    NewDay { old_day: String },
    /// A new minute: its counters start again.
    NewMinute { old_minute: u64 },
}

impl Ledger {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// Counts a request of `client` at `at`, if every counter stays within `max`.
    pub async fn reserve(
        &self,
        client: &str,
        at: &Windows,
        add: Reservation,
        max: &Thresholds,
    ) -> Result<Reserved, LedgerError> {
        let mut step = Step::Add;
        for _ in 0..MAX_TRIES {
            let mut write = Write::new(self, client, at);
            write
                .value(":rq", add.requests)
                .value(":t", add.tokens)
                .value(":c", add.usd);
            write.value(":exp", at.expires_at);
            match &step {
                Step::Add => {
                    write
                        .set("#x = :exp")
                        .add("#rq :rq")
                        .add("#tk :t")
                        .add("#du :c")
                        .add("#mu :c")
                        .add("#mq :rq")
                        .add("#mt :t");
                    write.same_day().same_minute();
                    write.limits(max, true, true);
                }
                Step::Create => {
                    write.set("#x = :exp").set("#d = :day").set("#m = :minute");
                    write
                        .set("#rq = :rq")
                        .set("#tk = :t")
                        .set("#du = :c")
                        .set("#mu = :c")
                        .set("#mq = :rq")
                        .set("#mt = :t");
                    write.condition("attribute_not_exists(pk)");
                }
                Step::NewDay { old_day } => {
                    write.set("#x = :exp").set("#d = :day").set("#m = :minute");
                    write
                        .set("#rq = :rq")
                        .set("#tk = :t")
                        .set("#du = :c")
                        .add("#mu :c")
                        .add("#mq :rq")
                        .add("#mt :t");
                    write.string(":old_day", old_day).condition("#d = :old_day");
                    write.limits(max, false, false);
                }
                Step::NewMinute { old_minute } => {
                    write.set("#x = :exp").set("#m = :minute");
                    write
                        .set("#rq = :rq")
                        .set("#tk = :t")
                        .add("#du :c")
                        .add("#mu :c")
                        .add("#mq :rq")
                        .add("#mt :t");
                    write
                        .value(":old_minute", *old_minute)
                        .condition("#m = :old_minute");
                    write.same_day();
                    write.limits(max, true, false);
                }
            }
            let item = match write.send().await? {
                Ok(after) => return Ok(Reserved::Counted(after.counters)),
                Err(item) => item,
            };
            step = match item {
                None => Step::Create,
                Some(item) if item.day.as_deref() != Some(at.day.as_str()) => {
                    // The month's spend still counts in a new day.
                    let month_only = Thresholds {
                        month_usd: max.month_usd,
                        ..Thresholds::default()
                    };
                    if !month_only.usd_within(&item.counters) {
                        return Ok(Reserved::Refused(item.counters));
                    }
                    Step::NewDay {
                        old_day: item.day.unwrap_or_default(),
                    }
                }
                Some(item) if item.minute != Some(at.minute) => {
                    if !max.usd_within(&item.counters) {
                        return Ok(Reserved::Refused(item.counters));
                    }
                    Step::NewMinute {
                        old_minute: item.minute.unwrap_or_default(),
                    }
                }
                Some(item) if !max.within(&item.counters) => return Ok(Reserved::Refused(item.counters)),
                // Another request moved the windows between our two writes: again.
                Some(_) => Step::Add,
            };
        }
        Err(LedgerError {
            table: self.table.clone(),
            reason: format!("the item kept changing under {MAX_TRIES} conditional writes"),
        })
    }

    /// Adds `tokens` and `usd` (negative: gives back) to what `client` used in the
    /// windows `at` named, as far as they are still current: a minute gone by keeps its
    /// tokens, a day gone by its spend; the month's spend and tokens are always corrected.
    pub async fn adjust(&self, client: &str, at: &Windows, tokens: i64, usd: i64) -> Result<(), LedgerError> {
        if tokens == 0 && usd == 0 {
            return Ok(());
        }
        let (mut minute, mut day) = (true, true);
        for _ in 0..3 {
            let mut write = Write::new(self, client, at);
            write
                .signed(":c", usd)
                .add("#mu :c")
                .signed(":mt", tokens)
                .add("#mt :mt")
                .condition("attribute_exists(pk)");
            if day {
                write.add("#du :c").same_day();
            }
            if minute {
                write.signed(":t", tokens).add("#tk :t").same_minute();
            }
            match write.send().await? {
                Ok(_) => return Ok(()),
                Err(None) => return Ok(()), // the item expired: nothing to correct
                Err(Some(item)) => {
                    day &= item.day.as_deref() == Some(at.day.as_str());
                    minute &= day && item.minute == Some(at.minute);
                }
            }
        }
        Ok(())
    }
}

/// One `UpdateItem`, assembled.
struct Write<'a> {
    ledger: &'a Ledger,
    pk: String,
    set: Vec<&'static str>,
    add: Vec<&'static str>,
    conditions: Vec<&'static str>,
    values: HashMap<String, AttributeValue>,
}

impl<'a> Write<'a> {
    fn new(ledger: &'a Ledger, client: &str, at: &Windows) -> Self {
        let mut write = Self {
            ledger,
            pk: format!("{client}#{}", at.month),
            set: Vec::new(),
            add: Vec::new(),
            conditions: Vec::new(),
            values: HashMap::new(),
        };
        write.string(":day", &at.day).value(":minute", at.minute);
        write
    }

    fn set(&mut self, clause: &'static str) -> &mut Self {
        self.set.push(clause);
        self
    }

    fn add(&mut self, clause: &'static str) -> &mut Self {
        self.add.push(clause);
        self
    }

    fn condition(&mut self, clause: &'static str) -> &mut Self {
        self.conditions.push(clause);
        self
    }

    fn value(&mut self, name: &str, n: u64) -> &mut Self {
        self.values
            .insert(name.to_owned(), AttributeValue::N(n.to_string()));
        self
    }

    fn signed(&mut self, name: &str, n: i64) -> &mut Self {
        self.values
            .insert(name.to_owned(), AttributeValue::N(n.to_string()));
        self
    }

    fn string(&mut self, name: &str, s: &str) -> &mut Self {
        self.values
            .insert(name.to_owned(), AttributeValue::S(s.to_owned()));
        self
    }

    fn same_day(&mut self) -> &mut Self {
        self.condition("#d = :day")
    }

    fn same_minute(&mut self) -> &mut Self {
        self.condition("#m = :minute")
    }

    /// The thresholds as conditions: the USD ones always, the minute's counters when
    /// they carry on from the item (`requests`, `tokens`) or the day's spend does (`day`).
    fn limits(&mut self, max: &Thresholds, day: bool, minute: bool) -> &mut Self {
        if minute {
            if let Some(t) = max.requests {
                self.value(":max_rq", t).condition("#rq <= :max_rq");
            }
            if let Some(t) = max.tokens {
                self.value(":max_tk", t).condition("#tk <= :max_tk");
            }
        }
        if day && let Some(t) = max.day_usd {
            self.value(":max_du", t).condition("#du <= :max_du");
        }
        if let Some(t) = max.month_usd {
            self.value(":max_mu", t).condition("#mu <= :max_mu");
        }
        self
    }

    /// The item after the write, or (`Err`) the item as it was when the condition
    /// failed (`None`: there was none).
    async fn send(self) -> Result<Result<Item, Option<Item>>, LedgerError> {
        let mut expression = String::new();
        if !self.set.is_empty() {
            expression.push_str("SET ");
            expression.push_str(&self.set.join(", "));
        }
        if !self.add.is_empty() {
            expression.push_str(" ADD ");
            expression.push_str(&self.add.join(", "));
        }
        // Every name through a placeholder: DAY and MINUTE are DynamoDB reserved words.
        // DynamoDB refuses placeholders the expressions do not use: keep only the used.
        let conditions = self.conditions.join(" AND ");
        let words: Vec<&str> = expression
            .split(|c: char| !(c.is_ascii_alphanumeric() || "_:#".contains(c)))
            .chain(conditions.split(|c: char| !(c.is_ascii_alphanumeric() || "_:#".contains(c))))
            .collect();
        let names: HashMap<String, String> = [
            ("#d", "day"),
            ("#m", "minute"),
            ("#rq", "requests"),
            ("#tk", "tokens"),
            ("#du", "day_usd"),
            ("#mu", "month_usd"),
            ("#mq", "month_requests"),
            ("#mt", "month_tokens"),
            ("#x", "expires_at"),
        ]
        .into_iter()
        .filter(|(placeholder, _)| words.contains(placeholder))
        .map(|(placeholder, name)| (placeholder.to_owned(), name.to_owned()))
        .collect();
        let values: HashMap<String, AttributeValue> = self
            .values
            .into_iter()
            .filter(|(name, _)| words.contains(&name.as_str()))
            .collect();
        let request = self
            .ledger
            .client
            .update_item()
            .table_name(&self.ledger.table)
            .key("pk", AttributeValue::S(self.pk))
            .update_expression(expression.trim())
            .condition_expression(conditions)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send();
        let failed = |reason: String| LedgerError {
            table: self.ledger.table.clone(),
            reason,
        };
        match tokio::time::timeout(CALL_TIMEOUT, request).await {
            Err(_) => Err(failed(format!("no answer within {} s", CALL_TIMEOUT.as_secs()))),
            Ok(Ok(output)) => Ok(Ok(item(output.attributes()))),
            Ok(Err(SdkError::ServiceError(failure)))
                if matches!(failure.err(), UpdateItemError::ConditionalCheckFailedException(_)) =>
            {
                let UpdateItemError::ConditionalCheckFailedException(e) = failure.into_err() else {
                    unreachable!("matched above")
                };
                Ok(Err(e.item().map(|attrs| item(Some(attrs)))))
            }
            Ok(Err(e)) => Err(failed(DisplayErrorContext(e).to_string())),
        }
    }
}

fn item(attributes: Option<&HashMap<String, AttributeValue>>) -> Item {
    let get = |name: &str| attributes.and_then(|a| a.get(name));
    let number = |name: &str| {
        get(name)
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse::<i64>().ok())
    };
    let count = |name: &str| number(name).map_or(0, |n| u64::try_from(n).unwrap_or(0));
    Item {
        day: get("day").and_then(|v| v.as_s().ok()).cloned(),
        minute: number("minute").and_then(|n| u64::try_from(n).ok()),
        counters: Counters {
            requests: count("requests"),
            tokens: count("tokens"),
            day_usd: count("day_usd"),
            month_usd: count("month_usd"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_utc_calendar_windows() {
        // 2024-02-29T23:59:30Z: a leap day's last minute.
        let at = Windows::at(1_709_251_170);
        assert_eq!((at.month.as_str(), at.day.as_str()), ("2024-02", "2024-02-29"));
        assert_eq!((at.minute_left, at.day_left, at.month_left), (30, 30, 30));
        assert_eq!(at.expires_at, 1_709_251_200 + 31 * 86_400);
        let new_year = Windows::at(1_735_689_600); // 2025-01-01T00:00:00Z
        assert_eq!(
            (new_year.month.as_str(), new_year.day.as_str()),
            ("2025-01", "2025-01-01")
        );
        assert_eq!(new_year.month_left, 31 * 86_400);
        let december = Windows::at(1_733_011_200); // 2024-12-01T00:00:00Z
        assert_eq!(
            december.month_left,
            31 * 86_400,
            "December ends at the next year's start"
        );
    }

    #[test]
    fn day_numbers_round_trip() {
        for days in [0, 59, 365, 11_016, 19_782, 20_454, 100_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
    }
}
