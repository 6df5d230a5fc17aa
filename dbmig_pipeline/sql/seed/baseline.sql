-- Plain, valid values for the rows that carry the fixed edge cases (the first
-- ids of each table, and the last order), so that each such row shows only the
-- case written into it afterwards. Id 1 of every table stays like this: a clean row.
UPDATE public.offices
SET created_at = :base + interval '1 day' * id, updated_at = :base + interval '1 day' * id + interval '1 hour',
    name = 'Office ' || id, address1 = '1 Main St', address2 = NULL, city = 'Springfield', state = 'IL',
    zip = '62701', country = 'US', phone = '(217) 555-' || lpad(id::text, 4, '0'),
    email = 'office' || id || '@example.com', is_active = true
WHERE id <= :k_offices;

UPDATE public.doctors
SET created_at = :base + interval '1 day' * id, updated_at = :base + interval '1 day' * id + interval '1 hour',
    office_id = 1, first_name = 'Dana', last_name = 'Doctor ' || id, email = 'doctor' || id || '@example.com',
    phone = '217-556-' || lpad(id::text, 4, '0'), license_no = 'LIC-' || id, specialty = 'ORTHO', is_active = true
WHERE id <= :k_doctors;

UPDATE public.patients
SET created_at = :base + interval '1 day' * id, updated_at = :base + interval '1 day' * id + interval '1 hour',
    doctor_id = 1, first_name = 'Pat', last_name = 'Patient ' || id, birth_date = date '1985-05-05', gender = 'F',
    email = 'patient' || id || '@example.com', phone = '217-557-' || lpad(id::text, 4, '0'), status = 1, notes = NULL
WHERE id <= :k_patients;

UPDATE public.orders
SET created_at = :base + interval '1 day' * id, updated_at = :base + interval '1 day' * id + interval '1 hour',
    patient_id = 1, status = 'submitted', aligner_count = 20, price = 1500.00, currency = 'USD',
    details = jsonb_build_object('arches', 'both', 'rush', false),
    submitted_at = :base + interval '1 day' * id + interval '30 minutes', shipped_at = NULL
WHERE id <= :k_orders;

-- the last order keeps its generic timestamps
UPDATE public.orders
SET patient_id = 1, status = 'submitted', aligner_count = 20, price = 1500.00, currency = 'USD',
    details = jsonb_build_object('arches', 'both', 'rush', false),
    submitted_at = created_at + interval '30 minutes', shipped_at = NULL
WHERE id = :far_order_id;

UPDATE public.jaws
SET created_at = :base + interval '1 day' * id, updated_at = :base + interval '1 day' * id + interval '1 hour',
    patient_ref = 1, arch = 'U', teeth = '11,12,21', scan_url = 'https://scans.example.com/jaws/' || id || '.stl'
WHERE id <= :k_jaws;

UPDATE public.system_messages
SET created_at = :base + interval '1 day' * id, updated_at = :base + interval '1 day' * id + interval '1 hour',
    severity = 'info', code = 'SEED_FIXED', body = 'Fixed message ' || id,
    context = jsonb_build_object('source', 'seed')
WHERE id <= :k_system_messages;
