//! The `usage` command's table: per client key, what it used this month and today, and
//! the budget its limits leave. Figures come from the usage table (function/src/spend);
//! clients are named as the secret lists them, never by key or digest.

use std::fmt::Write as _;

use crate::client_keys::{self, Limits};

/// What one client used, as its usage table item holds it for the current windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Used {
    pub month_requests: u64,
    pub month_tokens: u64,
    /// Micro-dollars.
    pub day_usd: u64,
    pub month_usd: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The client's name, or `key N` as the report's Clients table shows it.
    pub label: String,
    pub limits: Limits,
    /// `None`: the proxy does not count this client (no limits, so it never writes to
    /// the table).
    pub used: Option<Used>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage {
    /// `YYYY-MM` and `YYYY-MM-DD`, UTC: the windows the figures are for.
    pub month: String,
    pub day: String,
    pub table: String,
    pub rows: Vec<Row>,
}

impl Usage {
    /// The markdown table, for the job summary and stdout alike.
    pub fn markdown(&self) -> String {
        let mut md = format!(
            "### Usage in {} (UTC; today {})\n\nFrom the usage table `{}`.\n\n",
            self.month, self.day, self.table
        );
        if self.rows.is_empty() {
            md.push_str("The secret lists no client keys.\n\n");
            return md;
        }
        md.push_str("| Client | Requests this month | Tokens this month | Spend today | Spend this month | Budget left today | Budget left this month |\n|---|---:|---:|---:|---:|---:|---:|\n");
        for row in &self.rows {
            let Some(used) = row.used else {
                let _ = writeln!(
                    md,
                    "| {} | not counted (no limits) | | | | no limit | no limit |",
                    super::cell(&row.label)
                );
                continue;
            };
            let left = |limit: Option<u64>, spent: u64| {
                limit.map_or_else(
                    || "no limit".to_owned(),
                    |l| client_keys::usd(l.saturating_sub(spent)),
                )
            };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} |",
                super::cell(&row.label),
                used.month_requests,
                used.month_tokens,
                client_keys::usd(used.day_usd),
                client_keys::usd(used.month_usd),
                left(row.limits.usd_per_day, used.day_usd),
                left(row.limits.usd_per_month, used.month_usd),
            );
        }
        md.push('\n');
        md
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::contains_all;

    #[test]
    fn budget_left_is_the_limit_less_the_spend_and_never_negative() {
        let usage = Usage {
            month: "2026-12".into(),
            day: "2026-12-05".into(),
            table: "proxy-usage".into(),
            rows: vec![
                Row {
                    label: "web-app".into(),
                    limits: Limits {
                        usd_per_day: Some(5_000_000),
                        usd_per_month: Some(50_000_000),
                        ..Limits::default()
                    },
                    used: Some(Used {
                        month_requests: 12,
                        month_tokens: 3456,
                        day_usd: 5_250_000,
                        month_usd: 12_340_000,
                    }),
                },
                Row {
                    label: "key 2".into(),
                    limits: Limits::default(),
                    used: None,
                },
            ],
        };
        let md = usage.markdown();
        contains_all(
            &md,
            &[
                "| web-app | 12 | 3456 | $5.25 | $12.34 | $0.00 | $37.66 |",
                "| key 2 | not counted (no limits) | | | | no limit | no limit |",
            ],
        );
    }
}
