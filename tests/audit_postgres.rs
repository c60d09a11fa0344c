//! Issue #21: the audit trail shipped to a real PostgreSQL server (a throwaway cluster per
//! test, see `pg_util`).

use crate::pg_util::PgCluster;

#[tokio::test]
async fn a_throwaway_cluster_starts_restarts_and_answers() {
    let Some(pg) = PgCluster::start("a_throwaway_cluster_starts_restarts_and_answers") else {
        return;
    };
    let row = pg
        .admin()
        .await
        .query_one("SELECT 40 + 2", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), 42);
    pg.stop();
    assert!(
        tokio_postgres::connect(&pg.admin_url(), tokio_postgres::NoTls)
            .await
            .is_err()
    );
    pg.restart();
    let row = pg.admin().await.query_one("SELECT 1", &[]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 1);
}
