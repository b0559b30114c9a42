//! What a migration is, and the rule both backends apply before running any.

use anyhow::bail;

/// One schema step: applied once, in its own transaction, and recorded in `schema_migrations`.
#[derive(Debug)]
pub(crate) struct Migration {
    pub version: i32,
    pub sql: &'static str,
}

/// The newest version this build knows: the last of `migrations`, which are listed in order.
pub(crate) fn latest_version(migrations: &[Migration]) -> i32 {
    migrations.last().map_or(0, |migration| migration.version)
}

/// Refuses a database migrated by a newer build: this build would misread tables it does not
/// know the shape of, and an older binary must not be rolled back onto live data by accident.
pub(crate) fn refuse_newer_schema(
    newest_applied: Option<i32>,
    migrations: &[Migration],
) -> anyhow::Result<()> {
    let known = latest_version(migrations);
    match newest_applied {
        Some(applied) if applied > known => bail!(
            "the database schema is at version {applied}, but this build of Twofold only knows \
             versions up to {known}; run a newer Twofold (or restore a backup made by this version)"
        ),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIST: &[Migration] = &[
        Migration {
            version: 1,
            sql: "",
        },
        Migration {
            version: 2,
            sql: "",
        },
    ];

    #[test]
    fn only_newer_versions_are_refused() {
        assert!(refuse_newer_schema(None, LIST).is_ok());
        assert!(refuse_newer_schema(Some(1), LIST).is_ok());
        assert!(refuse_newer_schema(Some(2), LIST).is_ok());
        let error = refuse_newer_schema(Some(3), LIST).unwrap_err().to_string();
        assert!(error.contains("version 3"), "{error}");
    }
}
