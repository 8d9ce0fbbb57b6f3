//! A real SQLite file standing in for the application's database: users,
//! groups and their permissions, and orders to aggregate.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, params};
use serde::{Deserialize, Serialize};

/// A SQLite database file.
#[derive(Debug, Clone)]
pub struct Db {
    path: PathBuf,
}

/// One user's order statistics: an aggregation over the orders table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderStats {
    /// How many orders the user placed.
    pub order_count: u32,
    /// Their sum.
    pub total_spent: f64,
}

impl Db {
    /// Creates the database at `path` (replacing it): `users` users in three
    /// groups, each group with permissions, and `orders` orders spread over
    /// the users.
    ///
    /// ```
    /// let path = std::env::temp_dir().join("cachette-web-doc.sqlite");
    /// let db = cachette_web::db::Db::create(&path, 10, 100).unwrap();
    /// assert_eq!(db.order_stats(1).unwrap().order_count, 10);
    /// ```
    pub fn create(path: &Path, users: u32, orders: u32) -> rusqlite::Result<Self> {
        let _ = std::fs::remove_file(path);
        let mut conn = Connection::open(path)?;
        conn.execute_batch(
            "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
             CREATE TABLE groups (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
             CREATE TABLE memberships (user_id INTEGER NOT NULL, group_id INTEGER NOT NULL);
             CREATE TABLE permissions (group_id INTEGER NOT NULL, name TEXT NOT NULL);
             CREATE TABLE orders (id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL, total REAL NOT NULL);",
        )?;
        let tx = conn.transaction()?;
        for (id, name, perms) in [
            (1, "customers", &["orders:read"][..]),
            (2, "staff", &["orders:read", "orders:write"][..]),
            (
                3,
                "admins",
                &["orders:read", "orders:write", "users:admin"][..],
            ),
        ] {
            tx.execute("INSERT INTO groups VALUES (?1, ?2)", params![id, name])?;
            for perm in perms {
                tx.execute("INSERT INTO permissions VALUES (?1, ?2)", params![id, perm])?;
            }
        }
        for user in 1..=users {
            tx.execute(
                "INSERT INTO users VALUES (?1, ?2)",
                params![user, format!("user {user}")],
            )?;
            tx.execute(
                "INSERT INTO memberships VALUES (?1, ?2)",
                params![user, 1 + user % 3],
            )?;
        }
        for order in 0..orders {
            let user = 1 + order % users;
            tx.execute(
                "INSERT INTO orders (user_id, total) VALUES (?1, ?2)",
                params![user, f64::from(order % 97) + 0.5],
            )?;
        }
        tx.commit()?;
        Ok(Self {
            path: path.to_owned(),
        })
    }

    fn open(&self) -> rusqlite::Result<Connection> {
        Connection::open(&self.path)
    }

    /// The user's order count and total: a scan of the orders table (no index).
    pub fn order_stats(&self, user_id: u32) -> rusqlite::Result<OrderStats> {
        self.open()?.query_row(
            "SELECT COUNT(*), COALESCE(SUM(total), 0) FROM orders WHERE user_id = ?1",
            params![user_id],
            |row| {
                Ok(OrderStats {
                    order_count: row.get(0)?,
                    total_spent: row.get(1)?,
                })
            },
        )
    }

    /// Records an order.
    pub fn add_order(&self, user_id: u32, total: f64) -> rusqlite::Result<()> {
        self.open()?.execute(
            "INSERT INTO orders (user_id, total) VALUES (?1, ?2)",
            params![user_id, total],
        )?;
        Ok(())
    }

    /// The user's permissions, through the groups they belong to, sorted.
    pub fn permissions(&self, user_id: u32) -> rusqlite::Result<Vec<String>> {
        let conn = self.open()?;
        let mut statement = conn.prepare(
            "SELECT DISTINCT p.name FROM memberships m JOIN permissions p ON p.group_id = m.group_id
             WHERE m.user_id = ?1 ORDER BY p.name",
        )?;
        let names = statement.query_map(params![user_id], |row| row.get(0))?;
        names.collect()
    }

    /// The permissions of each of `user_ids`, sorted, in one query (a
    /// user without any has an empty list).
    pub fn permissions_of(&self, user_ids: &[u32]) -> rusqlite::Result<HashMap<u32, Vec<String>>> {
        let conn = self.open()?;
        let marks = vec!["?"; user_ids.len()].join(", ");
        let mut statement = conn.prepare(&format!(
            "SELECT DISTINCT m.user_id, p.name FROM memberships m JOIN permissions p ON p.group_id = m.group_id
             WHERE m.user_id IN ({marks}) ORDER BY m.user_id, p.name"
        ))?;
        let mut found: HashMap<u32, Vec<String>> =
            user_ids.iter().map(|&id| (id, Vec::new())).collect();
        let rows = statement.query_map(rusqlite::params_from_iter(user_ids), |row| {
            Ok((row.get::<_, u32>(0)?, row.get::<_, String>(1)?))
        })?;
        for row in rows {
            let (user_id, name) = row?;
            found.entry(user_id).or_default().push(name);
        }
        Ok(found)
    }

    /// Moves the user into another group.
    pub fn set_group(&self, user_id: u32, group_id: u32) -> rusqlite::Result<()> {
        self.open()?.execute(
            "UPDATE memberships SET group_id = ?2 WHERE user_id = ?1",
            params![user_id, group_id],
        )?;
        Ok(())
    }

    /// Renames a user.
    pub fn rename(&self, user_id: u32, name: &str) -> rusqlite::Result<()> {
        self.open()?.execute(
            "UPDATE users SET name = ?2 WHERE id = ?1",
            params![user_id, name],
        )?;
        Ok(())
    }

    /// A user's name.
    pub fn name(&self, user_id: u32) -> rusqlite::Result<String> {
        self.open()?.query_row(
            "SELECT name FROM users WHERE id = ?1",
            params![user_id],
            |row| row.get(0),
        )
    }
}
