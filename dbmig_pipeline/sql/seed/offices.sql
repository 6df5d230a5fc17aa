-- Generic offices with ids 1 to n; the fixed edge-case rows are written over the first ids afterwards.
INSERT INTO public.offices (id, created_at, updated_at, name, address1, address2, city, state, zip,
                            country, phone, email, is_active)
SELECT
    i,
    pg_temp.seed_created_tied(c, u1, :tie, :tie_share),
    pg_temp.seed_updated(c, u1, u2, :t1, :tie, :tie_share),
    pg_temp.seed_messy(name, u5, 0.04, 0.001),
    (1 + floor(u6 * 9899)::int) || ' ' || pg_temp.seed_pick(ARRAY['Main St', 'Oak Ave', 'Elm Street', 'Route 9',
        'Boulevard Saint-Michel', 'Königstraße', 'Maple Dr.', '  Harbor Rd  '], u7),
    CASE WHEN u8 < 0.60 THEN NULL
         WHEN u8 < 0.85 THEN 'Suite ' || (100 + floor(u9 * 900)::int)
         WHEN u8 < 0.95 THEN ''
         ELSE ' Floor ' || (1 + floor(u9 * 30)::int) || ' ' END,
    pg_temp.seed_pick(ARRAY['Springfield', 'Portland', 'Austin', 'Montréal', 'San José', 'Zürich', ' Boston',
        'New York', 'Chicago', 'Denver'], u10),
    pg_temp.seed_pick(ARRAY['IL', 'OR', 'TX', 'QC', 'CA', 'ZH', 'MA', 'NY', 'il', ' CO '], u11),
    CASE WHEN u12 < 0.05 THEN NULL ELSE lpad(floor(u12 * 100000)::int::text, 5, '0') END,
    CASE WHEN u13 < 0.90 THEN 'US' WHEN u13 < 0.97 THEN 'CA' ELSE 'CH' END,
    pg_temp.seed_phone(u14, u15, u16),
    pg_temp.seed_email('office' || i, pg_temp.seed_pick(ARRAY['example.com', 'clinic.example.org', 'mail.test'], u18), u17),
    u19 < 0.92
FROM (
    SELECT i,
           pg_temp.seed_u(b, 3) AS u1, pg_temp.seed_u(b, 6) AS u2, pg_temp.seed_u(b, 15) AS u5,
           pg_temp.seed_u(b, 18) AS u6, pg_temp.seed_u(b, 21) AS u7, pg_temp.seed_u(b, 24) AS u8,
           pg_temp.seed_u(b, 27) AS u9, pg_temp.seed_u(b, 30) AS u10, pg_temp.seed_u(b, 33) AS u11,
           pg_temp.seed_u(b, 36) AS u12, pg_temp.seed_u(b, 39) AS u13, pg_temp.seed_u(b, 42) AS u14,
           pg_temp.seed_u(b, 45) AS u15, pg_temp.seed_u(b, 48) AS u16, pg_temp.seed_u(b, 51) AS u17,
           pg_temp.seed_u(b, 54) AS u18, pg_temp.seed_u(b, 57) AS u19,
           pg_temp.seed_created(pg_temp.seed_u(b, 0), :t0, :t1) AS c,
           pg_temp.seed_pick(ARRAY['Bright', 'Smile', 'Family', 'Downtown', 'Sunrise', 'Städtische', 'Évolution',
               'Happy Teeth', '歯科', 'Riverside'], pg_temp.seed_u(b, 9))
           || ' ' || pg_temp.seed_pick(ARRAY['Dental', 'Orthodontics', 'Dental Care', 'Clinic', 'Smiles'],
                                       pg_temp.seed_u(b, 12))
           || ' ' || i AS name
    FROM (SELECT g AS i, pg_temp.seed_block(:seed, 'offices', g) AS b
          FROM generate_series(1, :n) AS g OFFSET 0) AS blocks
    OFFSET 0
) AS r;
