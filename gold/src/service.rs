//! The gRPC face of the [`Store`]: converts messages, validates uids, maps
//! errors to statuses.

use tonic::{Request, Response, Status};
use tracing::instrument;
use warren_proto::gold::{
    Account, ApplyDeltaReply, ApplyDeltaRequest, BalanceReply, BalanceRequest, BanReply,
    BanRequest, CreateUserRequest, Credentials, EndSessionsReply, EndSessionsRequest,
    GetCredentialsRequest, GuestAccountRequest, HistoryReply, HistoryRequest, LedgerEntry,
    LiftBanRequest, RotateSessionRequest, SessionReply, StartSessionRequest, TransferReply,
    TransferRequest, gold_server::Gold,
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

fn count(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
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

    #[instrument(skip_all, fields(uid = req.get_ref().uid))]
    async fn start_session(
        &self,
        req: Request<StartSessionRequest>,
    ) -> Result<Response<SessionReply>, Status> {
        let req = req.into_inner();
        let uid = domain::uid(req.uid, "uid")?;
        self.store
            .start_session(uid, &req.family, &req.token_hash, req.expires_at_s)
            .await?;
        Ok(Response::new(SessionReply {
            uid: req.uid,
            family: req.family,
        }))
    }

    #[instrument(skip_all)]
    async fn rotate_session(
        &self,
        req: Request<RotateSessionRequest>,
    ) -> Result<Response<SessionReply>, Status> {
        let req = req.into_inner();
        let uid = self
            .store
            .rotate_session(
                &req.family,
                &req.token_hash,
                &req.new_token_hash,
                req.new_expires_at_s,
            )
            .await?;
        Ok(Response::new(SessionReply {
            uid: as_u64(uid),
            family: req.family,
        }))
    }

    #[instrument(skip_all)]
    async fn end_sessions(
        &self,
        req: Request<EndSessionsRequest>,
    ) -> Result<Response<EndSessionsReply>, Status> {
        let req = req.into_inner();
        let (uid, ended) = self
            .store
            .logout(&req.family, &req.token_hash, req.everywhere)
            .await?;
        Ok(Response::new(EndSessionsReply {
            uid: as_u64(uid),
            ended: count(ended),
        }))
    }

    #[instrument(skip_all, fields(uid = req.get_ref().uid, by = %req.get_ref().by))]
    async fn ban(&self, req: Request<BanRequest>) -> Result<Response<BanReply>, Status> {
        let req = req.into_inner();
        let uid = domain::uid(req.uid, "uid")?;
        let until_s = (req.until_s != 0).then_some(req.until_s);
        let ended = self.store.ban(uid, &req.reason, until_s, &req.by).await?;
        tracing::info!(uid, until_s, reason = %req.reason, by = %req.by, "banned");
        Ok(Response::new(BanReply {
            sessions_ended: count(ended),
            changed: true,
        }))
    }

    #[instrument(skip_all, fields(uid = req.get_ref().uid, by = %req.get_ref().by))]
    async fn lift_ban(&self, req: Request<LiftBanRequest>) -> Result<Response<BanReply>, Status> {
        let req = req.into_inner();
        let uid = domain::uid(req.uid, "uid")?;
        let changed = self.store.lift_ban(uid, &req.by).await?;
        if changed {
            tracing::info!(uid, by = %req.by, "ban lifted");
        }
        Ok(Response::new(BanReply {
            sessions_ended: 0,
            changed,
        }))
    }
}
