//! Payment providers: where top-up money comes from.
//!
//! A provider charges a payment token (what the app got from the card form) and answers with
//! a payment id, which the ledger records once. The built-in [`TestPaymentProvider`] follows
//! the contract: `"tok_test_ok"` is accepted, `"tok_test_declined"` — and any other token —
//! is declined. A real provider would sit behind the same trait, and its webhooks would post
//! to the same ledger through [`super::store::record_top_up`].

use std::future::Future;
use std::pin::Pin;

use rust_decimal::Decimal;

/// A charge to make.
#[derive(Clone, Debug)]
pub struct ChargeRequest<'a> {
    pub rider_id: &'a str,
    pub amount: Decimal,
    pub currency: &'a str,
    pub payment_token: &'a str,
    /// Our name for this top-up. Providers de-duplicate on it, so asking twice with the same
    /// reference charges once and answers with the same payment id.
    pub reference: &'a str,
}

/// Why a charge did not go through.
#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    /// The card or the bank said no: the rider's problem to solve (402 `payment_declined`).
    #[error("payment declined: {0}")]
    Declined(String),
    /// The provider could not be reached or failed: ours (500).
    #[error("payment provider failed: {0}")]
    Failed(#[source] anyhow::Error),
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Something that can take money from a rider's card.
pub trait PaymentProvider: Send + Sync + 'static {
    /// Charges the request; on success, the provider's payment id.
    fn charge<'a>(
        &'a self,
        request: ChargeRequest<'a>,
    ) -> BoxFuture<'a, Result<String, PaymentError>>;
}

/// The built-in provider for tests and demonstrations: no money moves.
#[derive(Debug, Default)]
pub struct TestPaymentProvider;

/// The token the test provider accepts.
pub const TEST_TOKEN_OK: &str = "tok_test_ok";
/// The token the test provider declines.
pub const TEST_TOKEN_DECLINED: &str = "tok_test_declined";

impl PaymentProvider for TestPaymentProvider {
    fn charge<'a>(
        &'a self,
        request: ChargeRequest<'a>,
    ) -> BoxFuture<'a, Result<String, PaymentError>> {
        Box::pin(async move {
            match request.payment_token {
                TEST_TOKEN_OK => Ok(format!("pay_test_{}", request.reference)),
                TEST_TOKEN_DECLINED => Err(PaymentError::Declined(
                    "Your card was declined. Please try another card.".to_owned(),
                )),
                _ => Err(PaymentError::Declined(
                    "This payment token is not valid. Please enter your card again.".to_owned(),
                )),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(token: &str) -> ChargeRequest<'_> {
        ChargeRequest {
            rider_id: "rider_1",
            amount: Decimal::TEN,
            currency: "EUR",
            payment_token: token,
            reference: "topup_1",
        }
    }

    #[tokio::test]
    async fn the_test_provider_follows_the_contract() {
        let provider = TestPaymentProvider;
        let first = provider.charge(request(TEST_TOKEN_OK)).await.unwrap();
        let again = provider.charge(request(TEST_TOKEN_OK)).await.unwrap();
        assert_eq!(first, again, "one reference, one payment");
        assert!(matches!(
            provider.charge(request(TEST_TOKEN_DECLINED)).await,
            Err(PaymentError::Declined(_))
        ));
        assert!(matches!(
            provider.charge(request("tok_whatever")).await,
            Err(PaymentError::Declined(_))
        ));
    }
}
