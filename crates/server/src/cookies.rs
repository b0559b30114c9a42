//! The session and CSRF cookies, and the return path. With an https public URL they carry the
//! `__Host-` prefix and `Secure`, which pins them to this host and path `/`.

use axum::http::{HeaderMap, HeaderValue, header};
use uuid::Uuid;

/// How long a remembered return path lasts: long enough to sign in and set up a second factor.
const RETURN_MAX_AGE_SECONDS: u64 = 3600;

/// Names and flags of the cookies, fixed at start from the public URL.
#[derive(Debug, Clone)]
pub struct CookieSettings {
    pub secure: bool,
    pub session_name: String,
    pub csrf_name: String,
    /// Where the browser goes once signed in (a secure message it asked for).
    pub return_name: String,
}

impl CookieSettings {
    pub fn new(secure: bool) -> Self {
        let prefix = if secure { "__Host-" } else { "" };
        Self {
            secure,
            session_name: format!("{prefix}twofold_session"),
            csrf_name: format!("{prefix}twofold_csrf"),
            return_name: format!("{prefix}twofold_return"),
        }
    }

    pub fn session_cookie(&self, token: &str) -> HeaderValue {
        self.cookie(&self.session_name, token, "Lax", None)
    }

    pub fn clear_session_cookie(&self) -> HeaderValue {
        self.cookie(&self.session_name, "", "Lax", Some(0))
    }

    pub fn csrf_cookie(&self, token: &str) -> HeaderValue {
        self.cookie(&self.csrf_name, token, "Strict", None)
    }

    /// Remembers `path` as where to go after signing in; `None` for anything but a message's
    /// address, so the cookie can never send a browser elsewhere.
    pub fn return_cookie(&self, path: &str) -> Option<HeaderValue> {
        is_return_path(path)
            .then(|| self.cookie(&self.return_name, path, "Lax", Some(RETURN_MAX_AGE_SECONDS)))
    }

    pub fn clear_return_cookie(&self) -> HeaderValue {
        self.cookie(&self.return_name, "", "Lax", Some(0))
    }

    /// The remembered return path, if the request carries a valid one (checked again on read:
    /// the cookie is the browser's to change).
    pub fn return_path<'a>(&self, headers: &'a HeaderMap) -> Option<&'a str> {
        read_cookie(headers, &self.return_name).filter(|path| is_return_path(path))
    }

    fn cookie(
        &self,
        name: &str,
        value: &str,
        same_site: &str,
        max_age: Option<u64>,
    ) -> HeaderValue {
        let mut text = format!("{name}={value}; Path=/; HttpOnly; SameSite={same_site}");
        if self.secure {
            text.push_str("; Secure");
        }
        if let Some(seconds) = max_age {
            text.push_str(&format!("; Max-Age={seconds}"));
        }
        // Names and values are base64url and fixed ASCII, always a valid header value.
        HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
    }
}

/// Whether `path` may be a return path: exactly `/messages/<uuid>`, in the canonical lowercase
/// hyphenated form, so no other path, host (`//evil.example`) or scheme can get through.
pub fn is_return_path(path: &str) -> bool {
    path.strip_prefix("/messages/")
        .and_then(|id| Uuid::try_parse(id).ok())
        .is_some_and(|id| path == format!("/messages/{id}"))
}

/// The value of cookie `name` in the request, if sent once or more (the first one wins).
pub fn read_cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|line| line.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_cookies_get_the_host_prefix_and_secure() {
        let settings = CookieSettings::new(true);
        let cookie = settings.session_cookie("abc");
        assert_eq!(
            cookie.to_str().unwrap(),
            "__Host-twofold_session=abc; Path=/; HttpOnly; SameSite=Lax; Secure"
        );
        let plain = CookieSettings::new(false).session_cookie("abc");
        assert_eq!(
            plain.to_str().unwrap(),
            "twofold_session=abc; Path=/; HttpOnly; SameSite=Lax"
        );
    }

    #[test]
    fn only_a_message_address_is_a_return_path() {
        let id = "0f8fad5b-d9cb-469f-a165-70867728950e";
        let path = format!("/messages/{id}");
        assert!(is_return_path(&path));
        for bad in [
            "/account",
            "//evil.example",
            "//evil.example/messages/0f8fad5b-d9cb-469f-a165-70867728950e",
            "https://evil.example/messages/0f8fad5b-d9cb-469f-a165-70867728950e",
            "/messages/0F8FAD5B-D9CB-469F-A165-70867728950E",
            "/messages/0f8fad5bd9cb469fa16570867728950e",
            "/messages/0f8fad5b-d9cb-469f-a165-70867728950e/delete",
            "/messages/0f8fad5b-d9cb-469f-a165-70867728950e?x=1",
            "/messages/",
            "",
        ] {
            assert!(!is_return_path(bad), "{bad}");
        }
        let settings = CookieSettings::new(true);
        let cookie = settings.return_cookie(&path).unwrap();
        assert_eq!(
            cookie.to_str().unwrap(),
            format!(
                "__Host-twofold_return={path}; Path=/; HttpOnly; SameSite=Lax; Secure; Max-Age=3600"
            )
        );
        assert!(settings.return_cookie("//evil.example").is_none());
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("twofold_return={path}")).unwrap(),
        );
        let plain = CookieSettings::new(false);
        assert_eq!(plain.return_path(&headers), Some(path.as_str()));
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("twofold_return=//evil.example"),
        );
        assert_eq!(plain.return_path(&headers), None);
    }

    #[test]
    fn reads_a_cookie_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; twofold_session=xyz; b=2"),
        );
        assert_eq!(read_cookie(&headers, "twofold_session"), Some("xyz"));
        assert_eq!(read_cookie(&headers, "missing"), None);
    }
}
