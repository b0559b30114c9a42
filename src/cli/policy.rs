//! `twofold policy …`: shows and changes the organisation's security policy in the database
//! (every server instance applies a change within its policy refresh interval).

use anyhow::bail;
use clap::Subcommand;
use serde::Serialize;
use serde_json::Value;
use twofold_core::policy::{CurrentPolicy, PolicyChange, PolicyError, SecurityPolicy};

use super::open_service;
use crate::config::Config;

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Prints the policy in force as JSON, with its version and when it was last changed
    /// (version 0: nobody changed it, the configuration's values apply).
    Show,
    /// Changes settings and prints the new policy, e.g.
    /// `twofold policy set two_factor=everyone allowed_methods=totp,sms grace_period_days=7`.
    Set {
        /// KEY=VALUE: two_factor (admins, everyone), allowed_methods (a comma-separated list
        /// of totp, sms, email), or a number: grace_period_days, recovery_code_count,
        /// totp_skew_steps, session_idle_timeout_minutes, session_absolute_timeout_minutes,
        /// lockout_free_failures, lockout_first_wait_seconds, lockout_longest_wait_seconds.
        #[arg(required = true, value_name = "KEY=VALUE")]
        settings: Vec<String>,
    },
}

pub async fn run(config: Config, command: PolicyCommand) -> anyhow::Result<()> {
    // Parse before opening the database: a typo needs no database to be reported.
    let change = match &command {
        PolicyCommand::Show => None,
        PolicyCommand::Set { settings } => Some(policy_change(settings)?),
    };
    let service = open_service(&config).await?;
    let current = match change {
        None => service.policy().await?,
        Some(change) => service
            .change_policy(None, &change, None)
            .await
            .map_err(|error| match error {
                PolicyError::Invalid(reason) => anyhow::anyhow!("policy refused: {reason}"),
                other => anyhow::Error::new(other),
            })?,
    };
    out!("{}", serde_json::to_string_pretty(&policy_json(&current)?)?);
    Ok(())
}

/// The policy as printed: `version`, `updated_at` (RFC 3339, `null` at version 0) and
/// `updated_by` (a user id; `null` for the command line or the configuration), then the
/// settings under the names `policy set` takes.
#[derive(Debug, Serialize)]
struct PolicyJson<'a> {
    version: u64,
    updated_at: Option<String>,
    updated_by: Option<String>,
    #[serde(flatten)]
    policy: &'a SecurityPolicy,
}

fn policy_json(current: &CurrentPolicy) -> anyhow::Result<PolicyJson<'_>> {
    // Whole seconds, as stored: a policy just saved prints as it will read back.
    let updated_at = current
        .updated_at
        .map(|at| rfc3339(at.replace_nanosecond(0).unwrap_or(at)))
        .transpose()?;
    Ok(PolicyJson {
        version: current.version,
        updated_at,
        updated_by: current.updated_by.map(|id| id.to_string()),
        policy: &current.policy,
    })
}

/// Builds the change from `KEY=VALUE` words. Each setting is checked on its own first, so
/// that the error names the one at fault.
fn policy_change(settings: &[String]) -> anyhow::Result<PolicyChange> {
    let mut fields = serde_json::Map::new();
    for setting in settings {
        let Some((key, text)) = setting.split_once('=') else {
            bail!("{setting:?} is not KEY=VALUE (for example two_factor=everyone)");
        };
        let key = key.trim();
        let value = setting_value(key, text.trim());
        let single = serde_json::Map::from_iter([(key.to_owned(), value.clone())]);
        if let Err(error) = serde_json::from_value::<PolicyChange>(Value::Object(single)) {
            bail!("invalid policy setting {setting:?}: {error}");
        }
        if fields.insert(key.to_owned(), value).is_some() {
            bail!("the policy setting {key} is given twice");
        }
    }
    Ok(serde_json::from_value(Value::Object(fields))?)
}

/// `allowed_methods` is a comma-separated list; whole numbers are numbers; anything else is
/// a string (the names of `two_factor`).
fn setting_value(key: &str, text: &str) -> Value {
    if key == "allowed_methods" {
        return text
            .split(',')
            .map(str::trim)
            .filter(|method| !method.is_empty())
            .map(|method| Value::String(method.to_owned()))
            .collect();
    }
    if let Ok(number) = text.parse::<u64>() {
        return number.into();
    }
    if let Ok(number) = text.parse::<i64>() {
        return number.into();
    }
    Value::String(text.to_owned())
}

fn rfc3339(at: time::OffsetDateTime) -> anyhow::Result<String> {
    Ok(at.format(&time::format_description::well_known::Rfc3339)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use twofold_core::policy::TwoFactorRule;
    use twofold_core::user::Method;

    fn words(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn settings_become_a_change() {
        let change = policy_change(&words(
            "two_factor=everyone allowed_methods=totp,sms grace_period_days=7",
        ))
        .unwrap();
        assert_eq!(
            change,
            PolicyChange {
                two_factor: Some(TwoFactorRule::Everyone),
                allowed_methods: Some(vec![Method::Totp, Method::Sms]),
                grace_period_days: Some(7),
                ..PolicyChange::default()
            }
        );
    }

    #[test]
    fn a_bad_setting_is_named_in_one_line() {
        for (text, named) in [
            ("two_factor=sometimes", "two_factor=sometimes"),
            ("grace_period_days=lots", "grace_period_days=lots"),
            ("grace_period_days=-1", "grace_period_days=-1"),
            ("colour=blue", "colour"),
            ("allowed_methods=totp,pigeon", "pigeon"),
            ("two_factor", "KEY=VALUE"),
            ("grace_period_days=1 grace_period_days=2", "twice"),
        ] {
            let error = format!("{:#}", policy_change(&words(text)).unwrap_err());
            assert!(error.contains(named), "{text}: {error}");
            assert!(!error.contains('\n'), "{text}: {error}");
        }
    }
}
