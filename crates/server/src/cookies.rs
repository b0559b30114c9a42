//! The session and CSRF cookies. With an https public URL they carry the `__Host-` prefix and
//! `Secure`, which pins them to this host and path `/`.

use axum::http::{HeaderMap, HeaderValue, header};

/// Names and flags of the cookies, fixed at start from the public URL.
#[derive(Debug, Clone)]
pub struct CookieSettings {
    pub secure: bool,
    pub session_name: String,
    pub csrf_name: String,
}

impl CookieSettings {
    pub fn new(secure: bool) -> Self {
        let prefix = if secure { "__Host-" } else { "" };
        Self {
            secure,
            session_name: format!("{prefix}twofold_session"),
            csrf_name: format!("{prefix}twofold_csrf"),
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
