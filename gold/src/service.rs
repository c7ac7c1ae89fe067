//! The gRPC face of the [`Store`]: converts messages, validates uids, maps
//! errors to statuses.

use tonic::{Request, Response, Status};
use tracing::instrument;
use warren_proto::gold::{
    Account, ApplyDeltaReply, ApplyDeltaRequest, BalanceReply, BalanceRequest, CreateUserRequest,
    Credentials, GetCredentialsRequest, GuestAccountRequest, HistoryReply, HistoryRequest,
    LedgerEntry, TransferReply, TransferRequest, gold_server::Gold,
};

use crate::{GoldError, Store, domain};

#[derive(Clone, Debug)]
pub struct GoldService {
    store: Store,
}

impl GoldService {
    pub fn new(store: Store) -> Self {
        GoldService { store }
    }
}

fn as_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

#[tonic::async_trait]
impl Gold for GoldService {
    #[instrument(skip_all)]
    async fn guest_account(
        &self,
        req: Request<GuestAccountRequest>,
    ) -> Result<Response<Account>, Status> {
        let (uid, created) = self
            .store
            .guest_account(&req.into_inner().device_id)
            .await?;
        Ok(Response::new(Account {
            uid: as_u64(uid),
            created,
        }))
    }

    #[instrument(skip_all)]
    async fn create_user(
        &self,
        req: Request<CreateUserRequest>,
    ) -> Result<Response<Account>, Status> {
        let req = req.into_inner();
        let uid = self
            .store
            .create_user(&req.username, &req.password_hash)
            .await?;
        Ok(Response::new(Account {
            uid: as_u64(uid),
            created: true,
        }))
    }

    #[instrument(skip_all)]
    async fn get_credentials(
        &self,
        req: Request<GetCredentialsRequest>,
    ) -> Result<Response<Credentials>, Status> {
        let (uid, password_hash) = self.store.credentials(&req.into_inner().username).await?;
        Ok(Response::new(Credentials {
            uid: as_u64(uid),
            password_hash,
        }))
    }

    #[instrument(skip_all, fields(uid = req.get_ref().uid))]
    async fn balance(
        &self,
        req: Request<BalanceRequest>,
    ) -> Result<Response<BalanceReply>, Status> {
        let req = req.into_inner();
        let balance = self
            .store
            .balance(domain::uid(req.uid, "uid")?, &req.currency)
            .await?;
        Ok(Response::new(BalanceReply { balance }))
    }

    #[instrument(skip_all, fields(uid = req.get_ref().uid, key = %req.get_ref().idempotency_key))]
    async fn apply_delta(
        &self,
        req: Request<ApplyDeltaRequest>,
    ) -> Result<Response<ApplyDeltaReply>, Status> {
        let req = req.into_inner();
        let applied = self
            .store
            .apply_delta(
                domain::uid(req.uid, "uid")?,
                &req.currency,
                req.delta,
                &req.reason,
                &req.idempotency_key,
            )
            .await?;
        Ok(Response::new(ApplyDeltaReply {
            balance: applied.balance,
            entry_id: as_u64(applied.entry_id),
            replayed: applied.replayed,
        }))
    }

    #[instrument(skip_all, fields(from = req.get_ref().from_uid, to = req.get_ref().to_uid, key = %req.get_ref().idempotency_key))]
    async fn transfer(
        &self,
        req: Request<TransferRequest>,
    ) -> Result<Response<TransferReply>, Status> {
        let req = req.into_inner();
        let done = self
            .store
            .transfer(
                domain::uid(req.from_uid, "from_uid")?,
                domain::uid(req.to_uid, "to_uid")?,
                &req.currency,
                req.amount,
                &req.reason,
                &req.idempotency_key,
            )
            .await?;
        Ok(Response::new(TransferReply {
            from_balance: done.from_balance,
            to_balance: done.to_balance,
            replayed: done.replayed,
        }))
    }

    #[instrument(skip_all, fields(uid = req.get_ref().uid))]
    async fn history(
        &self,
        req: Request<HistoryRequest>,
    ) -> Result<Response<HistoryReply>, Status> {
        let req = req.into_inner();
        let limit = match req.limit {
            0 => 50,
            n @ 1..=500 => i64::from(n),
            _ => return Err(GoldError::BadRequest("limit must be at most 500".into()).into()),
        };
        let before = i64::try_from(req.before_id)
            .map_err(|_| GoldError::BadRequest("before_id is out of range".into()))?;
        let entries = self
            .store
            .history(domain::uid(req.uid, "uid")?, &req.currency, before, limit)
            .await?;
        let next_before_id = if entries.len() as i64 == limit {
            entries.last().map_or(0, |e| as_u64(e.id))
        } else {
            0
        };
        Ok(Response::new(HistoryReply {
            entries: entries
                .into_iter()
                .map(|e| LedgerEntry {
                    id: as_u64(e.id),
                    uid: as_u64(e.uid),
                    currency: e.currency,
                    delta: e.delta,
                    balance_after: e.balance_after,
                    reason: e.reason,
                    idempotency_key: e.idempotency_key,
                    created_at_ms: e.created_at_ms,
                })
                .collect(),
            next_before_id,
        }))
    }
}
