//! Email through SMTP (lettre): a text and an HTML part, over a pooled connection. The password
//! from `SMTP_URL` goes to the server only, never to a log (lettre's own tracing is off).

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::AttemptError;
use crate::config::{SmtpSettings, SmtpTls};
use crate::domain::message::EmailContent;

pub struct EmailSender {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl EmailSender {
    /// A sender for the server `settings` name; `pool_size` connections are kept at most.
    pub fn new(settings: &SmtpSettings, pool_size: u32) -> Result<Self, String> {
        let tls_params = || {
            TlsParameters::new(settings.host.clone())
                .map_err(|e| format!("TLS setup for {}: {e}", settings.host))
        };
        let tls = match settings.tls {
            SmtpTls::None => Tls::None,
            SmtpTls::StartTls => Tls::Required(tls_params()?),
            SmtpTls::Implicit => Tls::Wrapper(tls_params()?),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&settings.host)
            .port(settings.port)
            .tls(tls)
            .timeout(Some(settings.timeout))
            .pool_config(PoolConfig::new().max_size(pool_size.max(1)));
        if let Some((user, password)) = &settings.credentials {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        Ok(Self {
            transport: builder.build(),
            from: settings.from.clone(),
        })
    }

    /// Send one reminder mail. The notification id becomes the Message-ID, so a receiver could
    /// recognise a copy.
    pub async fn send(
        &self,
        to_address: &str,
        to_name: Option<&str>,
        content: &EmailContent,
        notification_id: &str,
    ) -> Result<(), AttemptError> {
        let address = to_address.parse().map_err(|e| {
            AttemptError::Permanent(format!("the user's email address is not valid: {e}"))
        })?;
        let to = Mailbox::new(to_name.map(str::to_owned), address);
        let domain = self.from.email.domain().to_owned();
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(content.subject.clone())
            .message_id(Some(format!("<{notification_id}@{domain}>")))
            .multipart(MultiPart::alternative_plain_html(
                content.text.clone(),
                content.html.clone(),
            ))
            .map_err(|e| AttemptError::Permanent(format!("cannot build the mail: {e}")))?;
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            // 5xx: the server refuses this mail for good (unknown mailbox, policy).
            Err(e) if e.is_permanent() => Err(AttemptError::Permanent(format!("SMTP: {e}"))),
            // Connection refused, timeouts, 4xx, TLS trouble: may work later.
            Err(e) => Err(AttemptError::Transient(format!("SMTP: {e}"))),
        }
    }

    /// Whether the server answers (for `/readyz`).
    pub async fn reachable(&self) -> Result<(), String> {
        match self.transport.test_connection().await {
            Ok(true) => Ok(()),
            Ok(false) => Err("SMTP server did not accept a connection".to_owned()),
            Err(e) => Err(format!("SMTP: {e}")),
        }
    }
}
