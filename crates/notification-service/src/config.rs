//! The notification-service's settings (SPEC section 5), read once at start; a missing or bad one
//! stops the service with one line naming it.

use std::time::Duration;

use lettre::message::Mailbox;
use service_kit::auth::TokenVerifier;
use service_kit::config::{CommonConfig, ConfigError, millis_or, optional, parsed_or, required};
use service_kit::consumer::RetryPolicy;
use service_kit::sms::SmsGatewaySettings;
use service_kit::webhook::WebhookKey;

/// The contract's port of the service.
pub const PORT: u16 = 8002;
pub const SERVICE: &str = "notification-service";

#[derive(Debug, Clone)]
pub struct Config {
    pub common: CommonConfig,
    pub verifier: TokenVerifier,
    /// `CONSUMER_GROUP`, default `notification-service` (tests give each app its own).
    pub consumer_group: String,
    pub smtp: SmtpSettings,
    pub webhook: WebhookSettings,
    /// `SMS_GATEWAY_URL` and its key: `None` when SMS is off here (an SMS delivery then fails
    /// for good, saying so).
    pub sms: Option<SmsGatewaySettings>,
    /// Web Push, when `VAPID_PRIVATE_KEY` is set; without it the push channel is unavailable
    /// and a push delivery fails saying so (a deployment without push still starts).
    pub push: Option<PushSettings>,
    /// `APP_BASE_URL`: where the web app lives, for the task links in messages.
    pub app_base_url: String,
    pub schedule: ScheduleSettings,
    pub delivery: DeliverySettings,
}

/// How reminders are fired.
#[derive(Debug, Clone)]
pub struct ScheduleSettings {
    /// `REMINDER_LATE_AFTER_MS` (10 s): a reminder fired later than this after its time is `late`.
    pub late_after: Duration,
    /// `REMINDER_EXPIRE_AFTER_MS` (24 h): a reminder missed by more than this (a long outage, a
    /// replay into an empty database) is expired instead of fired: a day-old reminder is noise.
    pub expire_after: Duration,
    /// `SCHEDULER_BATCH_SIZE` (500): reminders claimed per transaction.
    pub batch_size: i64,
    /// `SCHEDULER_MAX_IDLE_MS` (30 s): longest sleep without a known due reminder. Another instance
    /// may have scheduled one (its wake-up does not reach this process); this bounds the delay.
    pub max_idle: Duration,
}

/// How deliveries are attempted.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    /// `DELIVERY_MAX_ATTEMPTS` (5), `DELIVERY_RETRY_INITIAL_MS` (1 s), `DELIVERY_RETRY_MAX_MS` (60 s):
    /// exponential backoff with jitter between attempts of one delivery.
    pub retry: RetryPolicy,
    /// `DELIVERY_CONCURRENCY` (16): deliveries in flight at once.
    pub concurrency: usize,
    /// `DELIVERY_LEASE_MS` (120 s): how long an attempt holds its delivery. An instance that
    /// dies mid-attempt leaves the delivery to another one after this long, so it bounds how
    /// late such a delivery goes out; it must outlast any one attempt (more than twice
    /// `SMTP_TIMEOUT_MS`, `WEBHOOK_TIMEOUT_MS`, `SMS_GATEWAY_TIMEOUT_MS` and `PUSH_TIMEOUT_MS`), or a slow attempt would be taken over and
    /// sent twice.
    pub lease: Duration,
}

impl DeliverySettings {
    /// The default lease (`DELIVERY_LEASE_MS`).
    pub const DEFAULT_LEASE: Duration = Duration::from_secs(120);
}

#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// `WEBHOOK_SIGNING_KEY`: per-user secrets derive from it (shared with task-api).
    pub key: WebhookKey,
    /// `WEBHOOK_TIMEOUT_MS` (5 s): bound of one POST, connect included.
    pub timeout: Duration,
}

/// Web Push (RFC 8030) with VAPID (RFC 8292).
#[derive(Clone)]
pub struct PushSettings {
    /// `VAPID_PRIVATE_KEY`: base64url of the 32-byte P-256 private key; task-api hands the
    /// matching public key (`VAPID_PUBLIC_KEY`) to the page.
    pub vapid_key: p256::SecretKey,
    /// `VAPID_SUBJECT`: a `mailto:` or `https:` contact the push services may use (RFC 8292 §2.1).
    pub subject: String,
    /// `PUSH_TIMEOUT_MS` (5 s): bound of one POST to a push service.
    pub timeout: Duration,
}

impl std::fmt::Debug for PushSettings {
    // The private key never leaves this struct through formatting.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushSettings")
            .field("vapid_key", &"***")
            .field("subject", &self.subject)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl PushSettings {
    /// `None` when `VAPID_PRIVATE_KEY` is unset; a bad key or a missing or bad subject stops
    /// the service naming the setting.
    fn from_env() -> Result<Option<Self>, ConfigError> {
        let Some(key) = optional("VAPID_PRIVATE_KEY") else {
            return Ok(None);
        };
        let vapid_key = service_kit::push::parse_vapid_private_key("VAPID_PRIVATE_KEY", &key)?;
        let subject = required("VAPID_SUBJECT")?.trim().to_owned();
        if !(subject.starts_with("mailto:") || subject.starts_with("https://")) {
            return Err(ConfigError::new(
                "VAPID_SUBJECT",
                "must be a mailto: or https: contact URI (RFC 8292)",
            ));
        }
        Ok(Some(Self {
            vapid_key,
            subject,
            timeout: millis_or("PUSH_TIMEOUT_MS", Duration::from_secs(5))?,
        }))
    }
}

/// How to reach the SMTP server, from `SMTP_URL`.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub credentials: Option<(String, String)>,
    /// `SMTP_FROM`, default `Todo reminders <reminders@todo.localhost>`.
    pub from: Mailbox,
    /// `SMTP_TIMEOUT_MS` (10 s): bound of each SMTP command.
    pub timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// `smtp://` without `tls`: plain text (local sinks, tests).
    None,
    /// `smtp://…?tls=starttls`: upgrade with STARTTLS, refuse to go on without it.
    StartTls,
    /// `smtps://`: TLS from the first byte.
    Implicit,
}

impl std::fmt::Debug for SmtpSettings {
    // The password never leaves this struct through formatting.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("user", &self.credentials.as_ref().map(|(u, _)| u))
            .field("from", &self.from.to_string())
            .finish()
    }
}

pub const DEFAULT_FROM: &str = "Todo reminders <reminders@todo.localhost>";
pub const DEFAULT_APP_BASE_URL: &str = "http://127.0.0.1:8000";

impl SmtpSettings {
    /// Parse `SMTP_URL`: `smtp://host[:port]` (plain, port 25), `smtp://user:pass@host:587?tls=starttls`
    /// or `smtps://user:pass@host[:465]`. User and password may be percent-encoded.
    pub fn parse(value: &str, from: Mailbox, timeout: Duration) -> Result<Self, ConfigError> {
        let bad = |problem: &str| ConfigError::new("SMTP_URL", problem.to_owned());
        let url = url::Url::parse(value.trim()).map_err(|e| bad(&format!("not a URL ({e})")))?;
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad("needs a host, e.g. smtp://127.0.0.1:1025"))?
            .trim_matches(['[', ']'])
            .to_owned();
        let mut tls_param = None;
        for (k, v) in url.query_pairs() {
            match k.as_ref() {
                "tls" => tls_param = Some(v.to_ascii_lowercase()),
                other => return Err(bad(&format!("unknown parameter `{other}` (only tls)"))),
            }
        }
        let tls = match (url.scheme(), tls_param.as_deref()) {
            ("smtp", None | Some("none")) => SmtpTls::None,
            ("smtp", Some("starttls" | "required")) => SmtpTls::StartTls,
            ("smtps", None | Some("implicit")) => SmtpTls::Implicit,
            ("smtp" | "smtps", Some(other)) => {
                return Err(bad(&format!(
                    "tls={other} is not one of none, starttls (smtp://) or implicit (smtps://)"
                )));
            }
            _ => return Err(bad("must start with smtp:// or smtps://")),
        };
        let port = url.port().unwrap_or(match tls {
            SmtpTls::None => 25,
            SmtpTls::StartTls => 587,
            SmtpTls::Implicit => 465,
        });
        let decode = |s: &str| {
            url::form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        let credentials = match (url.username(), url.password()) {
            ("", None) => None,
            ("", Some(_)) => return Err(bad("a password needs a user name")),
            (user, password) => Some((
                decode(user),
                decode(password.ok_or_else(|| bad("a user name needs a password"))?),
            )),
        };
        if credentials.is_some() && tls == SmtpTls::None && !is_loopback(&host) {
            return Err(bad(
                "credentials over plain SMTP would travel in clear text: use ?tls=starttls or smtps://",
            ));
        }
        Ok(Self {
            host,
            port,
            tls,
            credentials,
            from,
            timeout,
        })
    }
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn retry_policy() -> Result<RetryPolicy, ConfigError> {
    let max_attempts = parsed_or("DELIVERY_MAX_ATTEMPTS", 5u32)?;
    if max_attempts == 0 {
        return Err(ConfigError::new(
            "DELIVERY_MAX_ATTEMPTS",
            "must be at least 1",
        ));
    }
    Ok(RetryPolicy {
        initial: millis_or("DELIVERY_RETRY_INITIAL_MS", Duration::from_secs(1))?,
        max_delay: millis_or("DELIVERY_RETRY_MAX_MS", Duration::from_secs(60))?,
        max_attempts,
    })
}

fn app_base_url() -> Result<String, ConfigError> {
    let value = optional("APP_BASE_URL").unwrap_or_else(|| DEFAULT_APP_BASE_URL.to_owned());
    match url::Url::parse(&value) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => {
            Ok(value.trim_end_matches('/').to_owned())
        }
        _ => Err(ConfigError::new(
            "APP_BASE_URL",
            "must be an http(s) URL, e.g. http://127.0.0.1:8000",
        )),
    }
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        let common = CommonConfig::from_env(SERVICE, PORT)?;
        let verifier = TokenVerifier::from_env()?;
        let from_text = optional("SMTP_FROM").unwrap_or_else(|| DEFAULT_FROM.to_owned());
        let from: Mailbox = from_text.parse().map_err(|e| {
            ConfigError::new(
                "SMTP_FROM",
                format!("not a mailbox like `Name <a@b.c>` ({e})"),
            )
        })?;
        let smtp = SmtpSettings::parse(
            &required("SMTP_URL")?,
            from,
            millis_or("SMTP_TIMEOUT_MS", Duration::from_secs(10))?,
        )?;
        let webhook = WebhookSettings {
            key: WebhookKey::from_env()?,
            timeout: millis_or("WEBHOOK_TIMEOUT_MS", Duration::from_secs(5))?,
        };
        let push = PushSettings::from_env()?;
        let concurrency = parsed_or("DELIVERY_CONCURRENCY", 16usize)?;
        if concurrency == 0 {
            return Err(ConfigError::new(
                "DELIVERY_CONCURRENCY",
                "must be at least 1",
            ));
        }
        let sms = SmsGatewaySettings::from_env()?;
        let lease = millis_or("DELIVERY_LEASE_MS", DeliverySettings::DEFAULT_LEASE)?;
        let longest_attempt = smtp
            .timeout
            .max(webhook.timeout)
            .max(sms.as_ref().map_or(Duration::ZERO, |s| s.timeout))
            .max(push.as_ref().map_or(Duration::ZERO, |p| p.timeout));
        if lease <= longest_attempt * 2 {
            return Err(ConfigError::new(
                "DELIVERY_LEASE_MS",
                format!(
                    "must be more than twice the longest attempt's timeout ({} ms, SMTP_TIMEOUT_MS, WEBHOOK_TIMEOUT_MS, SMS_GATEWAY_TIMEOUT_MS or PUSH_TIMEOUT_MS)",
                    longest_attempt.as_millis()
                ),
            ));
        }
        let batch_size = parsed_or("SCHEDULER_BATCH_SIZE", 500i64)?;
        if !(1..=5000).contains(&batch_size) {
            return Err(ConfigError::new(
                "SCHEDULER_BATCH_SIZE",
                "must be 1 to 5000",
            ));
        }
        Ok(Self {
            common,
            verifier,
            consumer_group: optional("CONSUMER_GROUP").unwrap_or_else(|| SERVICE.to_owned()),
            smtp,
            webhook,
            sms,
            push,
            app_base_url: app_base_url()?,
            schedule: ScheduleSettings {
                late_after: millis_or("REMINDER_LATE_AFTER_MS", Duration::from_secs(10))?,
                expire_after: millis_or(
                    "REMINDER_EXPIRE_AFTER_MS",
                    Duration::from_secs(24 * 60 * 60),
                )?,
                batch_size,
                max_idle: millis_or("SCHEDULER_MAX_IDLE_MS", Duration::from_secs(30))?,
            },
            delivery: DeliverySettings {
                retry: retry_policy()?,
                concurrency,
                lease,
            },
        })
    }
}

impl ScheduleSettings {
    pub fn defaults() -> Self {
        Self {
            late_after: Duration::from_secs(10),
            expire_after: Duration::from_secs(24 * 60 * 60),
            batch_size: 500,
            max_idle: Duration::from_secs(30),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse(url: &str) -> Result<SmtpSettings, ConfigError> {
        SmtpSettings::parse(url, DEFAULT_FROM.parse().unwrap(), Duration::from_secs(1))
    }

    #[test]
    fn smtp_urls_give_host_port_tls_and_credentials() {
        let plain = parse("smtp://127.0.0.1:1025").unwrap();
        assert_eq!(
            (plain.host.as_str(), plain.port, plain.tls),
            ("127.0.0.1", 1025, SmtpTls::None)
        );
        assert_eq!(plain.credentials, None);

        let starttls = parse("smtp://ada:s%40cret@mail.example.com:587?tls=starttls").unwrap();
        assert_eq!(starttls.tls, SmtpTls::StartTls);
        assert_eq!(starttls.port, 587);
        assert_eq!(
            starttls.credentials,
            Some(("ada".to_owned(), "s@cret".to_owned()))
        );

        let implicit = parse("smtps://ada:pw@mail.example.com").unwrap();
        assert_eq!((implicit.port, implicit.tls), (465, SmtpTls::Implicit));
    }

    #[test]
    fn bad_smtp_urls_name_the_setting() {
        for bad in [
            "mail.example.com",
            "http://mail.example.com",
            "smtp://",
            "smtp://host?tls=maybe",
            "smtp://host?foo=bar",
            "smtp://ada:pw@mail.example.com:25",
            "smtp://:pw@host",
        ] {
            let err = parse(bad).expect_err(bad);
            assert_eq!(err.name, "SMTP_URL", "{bad}");
        }
    }

    #[test]
    fn the_password_never_prints() {
        let s = parse("smtps://ada:hunter2@mail.example.com").unwrap();
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
