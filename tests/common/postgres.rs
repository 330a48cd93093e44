//! Fresh PostgreSQL databases for tests, on the server `scripts/ensure_postgres.sh` starts.

/// Where the test PostgreSQL lives.
pub fn admin_url() -> String {
    std::env::var("DATABASE_URL_TEST").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A fresh PostgreSQL database, dropped when the guard goes.
pub struct FreshPostgres {
    pub name: String,
    pub url: String,
}

impl FreshPostgres {
    /// Creates the database; callable from inside or outside an async runtime.
    pub fn create() -> Self {
        Self::create_with("")
    }

    /// Creates the database with `options` (SQL that follows `CREATE DATABASE name`, such as
    /// a locale); callable from inside or outside an async runtime.
    pub fn create_with(options: &'static str) -> Self {
        std::thread::spawn(move || tokio::runtime::Runtime::new().unwrap().block_on(Self::create_async(options)))
            .join()
            .unwrap()
    }

    async fn create_async(options: &str) -> Self {
        sqlx::any::install_default_drivers();
        let admin = admin_url();
        let name = format!("ingest_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at {admin} is not reachable ({e}); run scripts/ensure_postgres.sh"));
        sqlx::query(&format!("CREATE DATABASE {name} {options}")).execute(&mut conn).await.unwrap();
        let base = admin.rsplit_once('/').unwrap().0;
        Self { url: format!("{base}/{name}"), name }
    }
}

impl FreshPostgres {
    /// Ends the sessions holding advisory locks in this database, and only those; returns how
    /// many it ended. Callable from inside or outside an async runtime.
    pub fn terminate_lock_holders(&self) -> i64 {
        let name = self.name.clone();
        std::thread::spawn(move || {
            tokio::runtime::Runtime::new().unwrap().block_on(async {
                let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&admin_url()).await.unwrap();
                sqlx::query_scalar::<_, i64>(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_locks WHERE locktype = 'advisory'
                     AND database = (SELECT oid FROM pg_database WHERE datname = $1)",
                )
                .bind(name)
                .fetch_one(&mut conn)
                .await
                .unwrap()
            })
        })
        .join()
        .unwrap()
    }
}

impl Drop for FreshPostgres {
    fn drop(&mut self) {
        let (admin, name) = (admin_url(), self.name.clone());
        std::thread::spawn(move || {
            tokio::runtime::Runtime::new().unwrap().block_on(async {
                if let Ok(mut conn) = <sqlx::AnyConnection as sqlx::Connection>::connect(&admin).await {
                    let _ =
                        sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut conn).await;
                }
            })
        })
        .join()
        .unwrap();
    }
}
