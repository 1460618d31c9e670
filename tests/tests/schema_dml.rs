//! Schema, DML, indexes, joins, aggregates, views and triggers through bop.

use bop_tests::{assert_integrity, close, open, tempdir};
use rusqlite::{params, ErrorCode};

#[test]
fn schema_dml_indexes_joins() {
    let dir = tempdir();
    let store = dir.path().join("shop.db");
    let conn = open(&store);
    conn.execute_batch(
        "CREATE TABLE customer(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, city TEXT);
         CREATE TABLE item(id INTEGER PRIMARY KEY, title TEXT NOT NULL, price INTEGER NOT NULL);
         CREATE TABLE orders(id INTEGER PRIMARY KEY,
                             customer INTEGER NOT NULL REFERENCES customer(id),
                             item INTEGER NOT NULL REFERENCES item(id),
                             qty INTEGER NOT NULL);
         CREATE INDEX orders_customer ON orders(customer);
         CREATE INDEX orders_item ON orders(item, qty);
         CREATE VIEW spend AS
             SELECT c.name AS name, sum(o.qty * i.price) AS total
             FROM orders o JOIN customer c ON c.id = o.customer JOIN item i ON i.id = o.item
             GROUP BY c.name;
         CREATE TABLE audit(what TEXT);
         CREATE TRIGGER orders_ins AFTER INSERT ON orders
             BEGIN INSERT INTO audit VALUES ('order ' || NEW.id); END;",
    )
    .unwrap();

    let cities = ["Oslo", "Lima", "Pune", "Kyiv"];
    for c in 1..=40i64 {
        conn.execute(
            "INSERT INTO customer(id, name, city) VALUES (?1, ?2, ?3)",
            params![c, format!("cust{c:03}"), cities[(c % 4) as usize]],
        )
        .unwrap();
    }
    for i in 1..=25i64 {
        conn.execute(
            "INSERT INTO item(id, title, price) VALUES (?1, ?2, ?3)",
            params![i, format!("item{i}"), i * 7 + 3],
        )
        .unwrap();
    }
    // Orders: deterministic, so the expected aggregates can be computed here.
    let mut orders = Vec::new();
    for o in 1..=600i64 {
        let cust = (o * 13) % 40 + 1;
        let item = (o * 7) % 25 + 1;
        let qty = o % 5 + 1;
        orders.push((o, cust, item, qty));
        conn.execute(
            "INSERT INTO orders(id, customer, item, qty) VALUES (?1, ?2, ?3, ?4)",
            params![o, cust, item, qty],
        )
        .unwrap();
    }
    let price = |item: i64| item * 7 + 3;

    // UNIQUE constraint still enforced.
    let err = conn
        .execute("INSERT INTO customer(name) VALUES ('cust001')", [])
        .unwrap_err();
    assert_eq!(
        err.sqlite_error_code(),
        Some(ErrorCode::ConstraintViolation)
    );

    // UPDATE and DELETE.
    conn.execute("UPDATE item SET price = price * 2 WHERE id % 5 = 0", [])
        .unwrap();
    let price2 = |item: i64| {
        if item % 5 == 0 {
            price(item) * 2
        } else {
            price(item)
        }
    };
    let deleted = conn
        .execute("DELETE FROM orders WHERE qty = 3", [])
        .unwrap();
    orders.retain(|o| o.3 != 3);
    assert_eq!(deleted, 600 - orders.len());

    // Join + aggregate through the view, compared with a computation here.
    let mut expected: std::collections::BTreeMap<String, i64> = Default::default();
    for &(_, c, i, q) in &orders {
        *expected.entry(format!("cust{c:03}")).or_default() += q * price2(i);
    }
    let got: std::collections::BTreeMap<String, i64> = conn
        .prepare("SELECT name, total FROM spend")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert_eq!(got, expected);

    // Index is used and gives the same answer as a full scan.
    let plan: String = conn
        .query_row(
            "EXPLAIN QUERY PLAN SELECT count(*) FROM orders WHERE customer = 7",
            [],
            |r| r.get(3),
        )
        .unwrap();
    assert!(plan.contains("orders_customer"), "plan: {plan}");
    for c in [1i64, 7, 23, 40] {
        let by_index: i64 = conn
            .query_row(
                "SELECT count(*) FROM orders WHERE customer = ?1",
                [c],
                |r| r.get(0),
            )
            .unwrap();
        let by_scan: i64 = conn
            .query_row(
                "SELECT count(*) FROM orders NOT INDEXED WHERE customer = ?1",
                [c],
                |r| r.get(0),
            )
            .unwrap();
        let here = orders.iter().filter(|o| o.1 == c).count() as i64;
        assert_eq!((by_index, by_scan), (here, here), "customer {c}");
    }

    // Left join with grouping by city.
    let mut per_city: Vec<(String, i64)> = conn
        .prepare(
            "SELECT c.city, count(o.id) FROM customer c LEFT JOIN orders o ON o.customer = c.id
             GROUP BY c.city ORDER BY c.city",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    let mut exp_city: std::collections::BTreeMap<String, i64> = Default::default();
    for c in cities {
        exp_city.insert(c.to_string(), 0);
    }
    for &(_, c, _, _) in &orders {
        *exp_city.get_mut(cities[(c % 4) as usize]).unwrap() += 1;
    }
    per_city.sort();
    assert_eq!(per_city, exp_city.into_iter().collect::<Vec<_>>());

    // The trigger fired once per inserted order.
    let audit: i64 = conn
        .query_row("SELECT count(*) FROM audit", [], |r| r.get(0))
        .unwrap();
    assert_eq!(audit, 600);

    // Schema changes: ALTER TABLE, DROP INDEX, DROP TABLE.
    conn.execute_batch(
        "ALTER TABLE item ADD COLUMN note TEXT DEFAULT 'n/a';
         DROP INDEX orders_item;
         DROP TABLE audit;",
    )
    .unwrap();
    let note: String = conn
        .query_row("SELECT note FROM item WHERE id = 3", [], |r| r.get(0))
        .unwrap();
    assert_eq!(note, "n/a");
    let objects: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert_eq!(
        objects,
        [
            "customer",
            "item",
            "orders",
            "orders_customer",
            "orders_ins",
            "spend"
        ]
    );
    assert_integrity(&conn);

    // A second connection in the same process sees the same data.
    let other = open(&store);
    let total: i64 = other
        .query_row("SELECT sum(total) FROM spend", [], |r| r.get(0))
        .unwrap();
    assert_eq!(total, expected.values().sum::<i64>());
    close(other);
    close(conn);
}
