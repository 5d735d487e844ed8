//! Users: registration, login and profile input, parsed into valid values.

use events::NotificationChannel;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use super::Invalid;

pub const MAX_EMAIL_LEN: usize = 254;
pub const MIN_PASSWORD_LEN: usize = 8;
/// Argon2 costs the same whatever the length, but a megabyte "password" is an attack, not a secret.
pub const MAX_PASSWORD_LEN: usize = 128;
pub const MAX_NAME_LEN: usize = 100;
pub const MAX_URL_LEN: usize = 2048;

/// `POST /api/auth/register`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    #[schema(example = "ada@example.com")]
    pub email: String,
    /// 8 to 128 characters.
    #[schema(
        example = "correct horse battery staple",
        min_length = 8,
        max_length = 128
    )]
    pub password: String,
    #[schema(example = "Ada")]
    pub name: Option<String>,
    /// IANA time zone, default `UTC`.
    #[schema(example = "Europe/Berlin")]
    pub timezone: Option<String>,
}

/// `POST /api/auth/login`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    #[schema(example = "ada@example.com")]
    pub email: String,
    #[schema(example = "correct horse battery staple")]
    pub password: String,
}

/// `PATCH /api/me`: only the fields present change; `null` clears name and webhook URL.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMeRequest {
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub name: Option<Option<String>>,
    pub timezone: Option<String>,
    /// Channels reminders are delivered on: `email`, `webhook`, `in_app`, `sms` (needs a verified
    /// phone number and a server with an SMS gateway).
    #[schema(value_type = Option<Vec<String>>, example = json!(["email", "in_app"]))]
    pub notification_channels: Option<Vec<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, example = "https://example.com/hooks/todo")]
    pub webhook_url: Option<Option<String>>,
}

/// Tells "absent" (`None`) from "null" (`Some(None)`) for PATCH bodies.
pub fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// A lower-cased, plausible email address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Email(String);

impl Email {
    pub fn parse(value: &str) -> Result<Self, String> {
        let email = value.trim().to_lowercase();
        let ok = email.len() <= MAX_EMAIL_LEN
            && !email.chars().any(|c| c.is_whitespace() || c.is_control())
            && matches!(email.split_once('@'), Some((local, domain))
                if !local.is_empty() && !domain.is_empty() && !domain.contains('@')
                    && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.'));
        if ok {
            Ok(Self(email))
        } else {
            Err("must be an email address such as ada@example.com".to_owned())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A password of acceptable length (never logged, never stored in clear).
#[derive(Clone)]
pub struct Password(String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(***)")
    }
}

impl Password {
    pub fn parse(value: &str) -> Result<Self, String> {
        let n = value.chars().count();
        if n < MIN_PASSWORD_LEN {
            Err(format!("must have at least {MIN_PASSWORD_LEN} characters"))
        } else if n > MAX_PASSWORD_LEN {
            Err(format!("must have at most {MAX_PASSWORD_LEN} characters"))
        } else {
            Ok(Self(value.to_owned()))
        }
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// A display name: trimmed, empty means none.
pub fn parse_name(value: Option<&str>) -> Result<Option<String>, String> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(n) if n.chars().count() > MAX_NAME_LEN => {
            Err(format!("must have at most {MAX_NAME_LEN} characters"))
        }
        Some(n) if n.chars().any(char::is_control) => {
            Err("must not contain control characters".to_owned())
        }
        Some(n) => Ok(Some(n.to_owned())),
    }
}

/// An IANA time zone, in its canonical spelling.
pub fn parse_timezone(value: &str) -> Result<String, String> {
    recurrence::parse_timezone(value)
        .map(|tz| tz.name().to_owned())
        .map_err(|e| e.message)
}

/// An http(s) URL for webhook deliveries.
pub fn parse_webhook_url(value: &str) -> Result<String, String> {
    let value = value.trim();
    if value.len() > MAX_URL_LEN {
        return Err(format!("must have at most {MAX_URL_LEN} characters"));
    }
    match url::Url::parse(value) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(u.to_string()),
        _ => Err("must be an http:// or https:// URL".to_owned()),
    }
}

/// Channels of a new user: email and in-app.
pub fn default_channels() -> Vec<NotificationChannel> {
    vec![NotificationChannel::Email, NotificationChannel::InApp]
}

/// A registration, valid.
#[derive(Debug, Clone)]
pub struct Registration {
    pub email: Email,
    pub password: Password,
    pub name: Option<String>,
    pub timezone: String,
}

impl Registration {
    pub fn parse(req: &RegisterRequest) -> Result<Self, Invalid> {
        let mut invalid = Invalid::new();
        let email = invalid.check("email", Email::parse(&req.email));
        let password = invalid.check("password", Password::parse(&req.password));
        let name = invalid.check("name", parse_name(req.name.as_deref()));
        let timezone = invalid.check(
            "timezone",
            parse_timezone(req.timezone.as_deref().unwrap_or("UTC")),
        );
        invalid.finish(|| {
            Some(Self {
                email: email?,
                password: password?,
                name: name?,
                timezone: timezone?,
            })
        })
    }
}

/// The user's profile as stored and as events carry it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub name: Option<String>,
    pub timezone: String,
    pub notification_channels: Vec<NotificationChannel>,
    pub webhook_url: Option<String>,
    /// E.164; set and changed through `/api/me/phone` only (see crate::changes::phone).
    pub phone_number: Option<String>,
    pub phone_verified: bool,
}

impl Profile {
    /// The number SMS may go to: only a verified one.
    pub fn verified_phone(&self) -> Option<&str> {
        self.phone_number.as_deref().filter(|_| self.phone_verified)
    }

    /// Apply a `PATCH /api/me` body; the result is checked as a whole (webhook channel needs a
    /// URL).
    pub fn apply(&self, req: &UpdateMeRequest) -> Result<Profile, Invalid> {
        let mut invalid = Invalid::new();
        let mut next = self.clone();
        if let Some(name) = &req.name
            && let Some(n) = invalid.check("name", parse_name(name.as_deref()))
        {
            next.name = n;
        }
        if let Some(tz) = &req.timezone
            && let Some(tz) = invalid.check("timezone", parse_timezone(tz))
        {
            next.timezone = tz;
        }
        if let Some(channels) = &req.notification_channels {
            let mut parsed = Vec::new();
            for (i, c) in channels.iter().enumerate() {
                if let Some(c) = invalid.check(
                    &format!("notification_channels[{i}]"),
                    c.parse::<NotificationChannel>(),
                ) && !parsed.contains(&c)
                {
                    parsed.push(c);
                }
            }
            next.notification_channels = parsed;
        }
        if let Some(url) = &req.webhook_url {
            match url.as_deref().map(str::trim) {
                None | Some("") => next.webhook_url = None,
                Some(u) => {
                    if let Some(u) = invalid.check("webhook_url", parse_webhook_url(u)) {
                        next.webhook_url = Some(u);
                    }
                }
            }
        }
        if invalid.is_empty()
            && next
                .notification_channels
                .contains(&NotificationChannel::Webhook)
            && next.webhook_url.is_none()
        {
            invalid.add(
                "webhook_url",
                "the webhook channel needs a webhook_url to deliver to",
            );
        }
        if invalid.is_empty()
            && next
                .notification_channels
                .contains(&NotificationChannel::Sms)
            && next.verified_phone().is_none()
        {
            // Changing or removing the number drops the channel, so this holds whatever else
            // a later PATCH changes.
            invalid.add(
                "notification_channels",
                "the sms channel needs a verified phone number (PUT /api/me/phone)",
            );
        }
        invalid.finish(|| Some(next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_nonsense_refused() {
        assert_eq!(
            Email::parse(" Ada@Example.COM ").unwrap().as_str(),
            "ada@example.com"
        );
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "a b@example.com",
            "ada@localhost",
            "a@b@c.d",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords_have_bounds() {
        assert!(Password::parse("short").is_err());
        assert!(Password::parse(&"x".repeat(129)).is_err());
        assert!(Password::parse("long enough").is_ok());
        assert_eq!(
            format!("{:?}", Password::parse("long enough").unwrap()),
            "Password(***)"
        );
    }

    #[test]
    fn the_webhook_channel_needs_a_url() {
        let profile = Profile {
            name: None,
            timezone: "UTC".into(),
            notification_channels: default_channels(),
            webhook_url: None,
            phone_number: None,
            phone_verified: false,
        };
        let req = UpdateMeRequest {
            notification_channels: Some(vec!["webhook".into()]),
            ..Default::default()
        };
        assert!(!profile.apply(&req).unwrap_err().is_empty());
        let req = UpdateMeRequest {
            notification_channels: Some(vec!["WEBHOOK".into(), "in_app".into()]),
            webhook_url: Some(Some("https://example.com/hook".into())),
            ..Default::default()
        };
        let next = profile.apply(&req).unwrap();
        assert_eq!(
            next.notification_channels,
            vec![NotificationChannel::Webhook, NotificationChannel::InApp]
        );
    }
}
