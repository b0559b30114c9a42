//! What administrators do to users (seed 004): the user list with its two-factor status,
//! requiring 2FA, resetting it, disabling and enabling accounts, and sending the invitation
//! again. Every change is recorded in the audit log with the administrator as its actor
//! (`None`: the command line, run by whoever operates the server), before it is made: if the
//! entry cannot be written nothing changes, so no change goes unrecorded (an entry whose change
//! then failed is possible; a change without its entry is not).

use secrecy::SecretString;

use crate::accounts::{AccountError, CreatedAccount, NewAccount, generate_temporary_password};
use crate::audit::{Event, EventKind};
use crate::login::ActiveSession;
use crate::notices::Notice;
use crate::password::NewPassword;
use crate::policy::CurrentPolicy;
use crate::service::Service;
use crate::session::SessionState;
use crate::store::{UserListing, UserQuery};
use crate::user::{Method, TwoFactorStatus, User, UserId};

/// The most users one page of the list holds.
pub const MAX_PAGE: u32 = 200;

/// A user as the administrators see them.
#[derive(Debug, Clone)]
pub struct AdminUser {
    pub user: User,
    pub two_factor: TwoFactorStatus,
    /// The second factors the user can sign in with (recovery codes are not listed).
    pub methods: Vec<Method>,
}

#[derive(Debug, Clone)]
pub struct AdminUserPage {
    pub users: Vec<AdminUser>,
    /// How many users match the search in all.
    pub total: u64,
}

fn listed(listing: UserListing, policy: &CurrentPolicy) -> AdminUser {
    let mut methods = Vec::new();
    for (has, method) in [
        (listing.has_totp, Method::Totp),
        (listing.has_phone, Method::Sms),
        (listing.has_email_factor, Method::Email),
    ] {
        if has && policy.policy.allows(method) {
            methods.push(method);
        }
    }
    let two_factor = TwoFactorStatus::derive(
        policy.requires_two_factor(&listing.user),
        !methods.is_empty(),
    );
    AdminUser {
        user: listing.user,
        two_factor,
        methods,
    }
}

impl Service {
    /// Whether `session` may use the administration: a fully signed-in administrator who has
    /// a second factor the policy allows (administrators always sign in with two factors).
    pub async fn may_administer(&self, session: &ActiveSession) -> Result<bool, AccountError> {
        Ok(session.state == SessionState::Authenticated
            && session.user.is_admin
            && !session.user.disabled
            && !self.usable_methods(&session.user).await?.is_empty())
    }

    /// One page of users, by email address, optionally only those whose address contains
    /// `search`.
    pub async fn list_users(
        &self,
        search: Option<&str>,
        offset: u64,
        limit: u32,
    ) -> Result<AdminUserPage, AccountError> {
        // Addresses are stored lowercased (all of Unicode, see `Email::parse`); so is the search.
        let search = search
            .map(str::trim)
            .filter(|text| !text.is_empty())
            .map(str::to_lowercase);
        let page = self
            .stores
            .users
            .list_users(&UserQuery {
                search: search.as_deref(),
                offset,
                limit: limit.clamp(1, MAX_PAGE),
            })
            .await?;
        let policy = self.policy().await?;
        Ok(AdminUserPage {
            users: page
                .users
                .into_iter()
                .map(|listing| listed(listing, &policy))
                .collect(),
            total: page.total,
        })
    }

    /// One user as the administrators see them.
    pub async fn admin_user(&self, id: UserId) -> Result<AdminUser, AccountError> {
        let user = self.user_by_id(id).await?;
        let summary = self.account_summary(&user).await?;
        let methods = summary
            .methods
            .into_iter()
            .filter(|method| *method != Method::RecoveryCode)
            .collect();
        Ok(AdminUser {
            user: summary.user,
            two_factor: summary.two_factor,
            methods,
        })
    }

    /// Creates a user for `actor` and emails them that an account exists (never the temporary
    /// password: the administrator hands that over, once).
    #[tracing::instrument(skip_all)]
    pub async fn create_account(
        &self,
        actor: Option<UserId>,
        account: NewAccount<'_>,
    ) -> Result<CreatedAccount, AccountError> {
        let created = self.insert_account(actor, account).await?;
        if created.temporary_password.is_some() {
            self.invite(&created.user).await;
        }
        Ok(created)
    }

    /// Requires (or stops requiring) a second factor for the user. Requiring it ends the
    /// sessions of a user who has no usable factor yet: the requirement holds from now, not
    /// from whenever a password-only session times out.
    #[tracing::instrument(skip(self))]
    pub async fn set_require_two_factor(
        &self,
        actor: Option<UserId>,
        id: UserId,
        required: bool,
    ) -> Result<AdminUser, AccountError> {
        let user = self.user_by_id(id).await?;
        self.audit(
            Event::by(EventKind::UserUpdated, actor, Some(id))
                .with("email", user.email.as_str())
                .with("require_2fa", required),
        )
        .await?;
        if !self
            .stores
            .users
            .set_require_2fa(id, required, self.clock.now())
            .await?
        {
            return Err(AccountError::NotFound);
        }
        if required && self.usable_methods(&user).await?.is_empty() {
            self.stores.sessions.delete_user_sessions(id, None).await?;
        }
        tracing::info!(user_id = %id, required, "two-factor requirement changed");
        self.admin_user(id).await
    }

    /// Removes every second factor of the user (the lost-device path) and ends their sessions,
    /// which may be in the hands of whoever has the device. If 2FA is required the user is
    /// `pending` again and enrolls at the next sign-in.
    #[tracing::instrument(skip(self))]
    pub async fn reset_two_factor(
        &self,
        actor: Option<UserId>,
        id: UserId,
    ) -> Result<AdminUser, AccountError> {
        // An administrator replaces their own factors from their account page; resetting them
        // here would end the very session doing it and leave them enrolling from scratch.
        if actor == Some(id) {
            return Err(AccountError::OwnAccount);
        }
        let user = self.user_by_id(id).await?;
        let methods = self.enrolled_methods(&user).await?;
        let removed: Vec<&str> = methods.iter().map(|method| method.as_str()).collect();
        self.audit(
            Event::by(EventKind::TwoFactorReset, actor, Some(id))
                .with("email", user.email.as_str())
                .with("removed", removed),
        )
        .await?;
        self.stores.factors.delete_all_factors(id).await?;
        // The lost-device path must not start behind a lockout earned with the old device.
        self.stores
            .throttle
            .clear_failures(&crate::throttle::second_factor_key(id))
            .await?;
        let ended = self.stores.sessions.delete_user_sessions(id, None).await?;
        tracing::info!(user_id = %id, sessions_ended = ended, "second factors reset");
        self.notify(
            &user,
            Notice::TwoFactorReset {
                by_administrator: true,
            },
        )
        .await;
        self.admin_user(id).await
    }

    /// Disables the user (they cannot sign in, and every session of theirs ends at once) or
    /// enables them again. Administrators cannot disable themselves (nor reset their own
    /// second factors).
    #[tracing::instrument(skip(self))]
    pub async fn set_disabled(
        &self,
        actor: Option<UserId>,
        id: UserId,
        disabled: bool,
    ) -> Result<AdminUser, AccountError> {
        if disabled && actor == Some(id) {
            return Err(AccountError::OwnAccount);
        }
        let user = self.user_by_id(id).await?;
        let kind = if disabled {
            EventKind::UserDisabled
        } else {
            EventKind::UserEnabled
        };
        self.audit(Event::by(kind, actor, Some(id)).with("email", user.email.as_str()))
            .await?;
        if !self
            .stores
            .users
            .set_disabled(id, disabled, self.clock.now())
            .await?
        {
            return Err(AccountError::NotFound);
        }
        let ended = if disabled {
            self.stores.sessions.delete_user_sessions(id, None).await?
        } else {
            0
        };
        tracing::info!(user_id = %id, disabled, sessions_ended = ended, "user disabled or enabled");
        self.admin_user(id).await
    }

    /// Sends the invitation again with a new temporary password (the earlier one stops
    /// working), returned once for the administrator to hand over. Only for users who have not
    /// chosen their own password yet.
    #[tracing::instrument(skip(self))]
    pub async fn resend_invitation(
        &self,
        actor: Option<UserId>,
        id: UserId,
    ) -> Result<SecretString, AccountError> {
        let user = self.user_by_id(id).await?;
        if !user.password_change_required {
            return Err(AccountError::InvitationAccepted);
        }
        let temporary = generate_temporary_password()?;
        let hash = self
            .hasher
            .hash(NewPassword::generated(temporary.clone()).secret())
            .await?;
        self.audit(
            Event::by(EventKind::InvitationSent, actor, Some(id))
                .with("email", user.email.as_str()),
        )
        .await?;
        if !self
            .stores
            .users
            .set_password(id, &user.password_hash, &hash, true, self.clock.now())
            .await?
        {
            return Err(AccountError::InvitationAccepted);
        }
        self.stores.sessions.delete_user_sessions(id, None).await?;
        self.invite(&user).await;
        Ok(temporary)
    }

    async fn invite(&self, user: &User) {
        let sign_in_url = format!("{}/login", self.settings.public_url);
        self.notify(user, Notice::Invitation { sign_in_url }).await;
    }
}
