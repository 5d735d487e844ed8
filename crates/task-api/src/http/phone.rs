//! `PUT /api/me/phone`, `POST /api/me/phone/verify`, `DELETE /api/me/phone`: the number SMS
//! goes to, verified by a code sent to it. Without an SMS gateway on this server the routes
//! answer 409 `sms-unavailable`.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use service_kit::http::{Authenticated, Problem, trace_of};
use service_kit::sms::{SmsError, SmsGateway};

use super::State;
use super::views::{ProblemDocument, UserView};
use crate::changes::phone::{self, CodeRequest, Verification};
use crate::domain::phone::{PhoneNumber, PhoneRequest, VerifyPhoneRequest};

fn gateway(state: &State) -> Result<&SmsGateway, Problem> {
    state.sms.as_ref().ok_or_else(|| {
        Problem::new(
            StatusCode::CONFLICT,
            "sms-unavailable",
            "SMS is not available",
        )
        .detail("this server has no SMS gateway configured, so phone numbers cannot be verified")
    })
}

/// Enter a phone number
///
/// Stores the number unverified (SMS stops going to the previous one, and the sms channel is
/// switched off until it is verified) and sends it a six-digit code by SMS, valid for 10
/// minutes. Entering the verified number again changes nothing.
#[utoipa::path(
    put,
    path = "/api/me/phone",
    tag = "me",
    security(("bearer" = [])),
    request_body = PhoneRequest,
    responses(
        (status = 202, description = "The code was sent; the user, with the number unverified", body = UserView),
        (status = 200, description = "The number was verified already", body = UserView),
        (status = 400, description = "Malformed JSON", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 401, description = "Missing or bad token", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "No SMS gateway on this server (sms-unavailable)", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "Not a phone number with its country code", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 429, description = "A code was sent moments ago; see Retry-After", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 502, description = "The SMS gateway refused the message", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 503, description = "The SMS gateway is unreachable; try again", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn enter_phone(
    req: HttpRequest,
    auth: Authenticated,
    state: State,
    body: web::Json<PhoneRequest>,
) -> Result<HttpResponse, Problem> {
    let gateway = gateway(&state)?;
    let number = PhoneNumber::parse(&body.phone_number)
        .map_err(|e| Problem::validation().field("phone_number", e))?;
    let outcome = phone::request_code(
        &state.db,
        gateway,
        auth.user_id().to_owned(),
        number,
        trace_of(&req).header(),
    )
    .await?;
    state.wake_relay();
    match outcome {
        CodeRequest::AlreadyVerified(user) => Ok(HttpResponse::Ok().json(UserView::from(&*user))),
        CodeRequest::Sent(user) => Ok(HttpResponse::Accepted().json(UserView::from(&*user))),
        CodeRequest::TooSoon { retry_after_s } => Err(Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "code-recently-sent",
            "A code was sent moments ago",
        )
        .detail("wait before asking for another code, or enter the one sent")
        .retry_after(retry_after_s.max(1) as u64)),
        CodeRequest::NotSent(SmsError::Transient(_)) => Err(Problem::unavailable(
            "the SMS gateway did not take the code now; try again shortly",
        )),
        CodeRequest::NotSent(SmsError::Permanent(_)) => Err(Problem::new(
            StatusCode::BAD_GATEWAY,
            "sms-refused",
            "The SMS gateway refused the message",
        )
        .detail("the code could not be sent to this number; check it, or try another")),
    }
}

/// Verify the phone number
///
/// With the code sent to it. Five wrong codes void it; then request a new one.
#[utoipa::path(
    post,
    path = "/api/me/phone/verify",
    tag = "me",
    security(("bearer" = [])),
    request_body = VerifyPhoneRequest,
    responses(
        (status = 200, description = "Verified: the user", body = UserView),
        (status = 400, description = "Malformed JSON", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 401, description = "Missing or bad token", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "No code pending, expired, or no SMS gateway on this server", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "Wrong code", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 429, description = "Too many wrong codes; request a new one", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn verify_phone(
    req: HttpRequest,
    auth: Authenticated,
    state: State,
    body: web::Json<VerifyPhoneRequest>,
) -> Result<HttpResponse, Problem> {
    let key = gateway(&state)?.settings().signing_key().to_owned();
    let code = body.code.trim();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Problem::validation().field("code", "must be the six digits sent by SMS"));
    }
    let outcome = phone::verify(
        &state.db,
        &key,
        auth.user_id().to_owned(),
        code.to_owned(),
        trace_of(&req).header(),
    )
    .await?;
    state.wake_relay();
    let request_again = "request a new code with PUT /api/me/phone";
    match outcome {
        Verification::Verified(user) => Ok(HttpResponse::Ok().json(UserView::from(&*user))),
        Verification::WrongCode { left } => Err(Problem::validation()
            .field("code", format!("is not the code sent ({left} tries left)"))),
        Verification::NoCode => Err(Problem::new(
            StatusCode::CONFLICT,
            "no-code-pending",
            "No code is pending",
        )
        .detail(request_again)),
        Verification::Expired => {
            Err(
                Problem::new(StatusCode::CONFLICT, "code-expired", "The code expired")
                    .detail(request_again),
            )
        }
        Verification::TooManyAttempts => Err(Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too-many-attempts",
            "Too many wrong codes",
        )
        .detail(request_again)),
    }
}

/// Remove the phone number
///
/// No SMS goes out any more; the sms channel is switched off.
#[utoipa::path(
    delete,
    path = "/api/me/phone",
    tag = "me",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Removed (or there was none)"),
        (status = 401, description = "Missing or bad token", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn remove_phone(
    req: HttpRequest,
    auth: Authenticated,
    state: State,
) -> Result<HttpResponse, Problem> {
    phone::remove(
        &state.db,
        auth.user_id().to_owned(),
        trace_of(&req).header(),
    )
    .await?;
    state.wake_relay();
    Ok(HttpResponse::NoContent().finish())
}
