-- Target (destination) schema `app`, exactly MAPPING.md section 2.
-- In a real deployment the new system owns this schema; dbmig creates it
-- only where it is missing (see dbmig_pipeline/schema.py).
CREATE SCHEMA IF NOT EXISTS app;

DO $$ BEGIN
    CREATE TYPE app.specialty AS ENUM ('orthodontist', 'general_dentist', 'pediatric_dentist', 'other');
EXCEPTION WHEN duplicate_object THEN NULL; END $$;
DO $$ BEGIN
    CREATE TYPE app.sex AS ENUM ('female', 'male', 'unknown');
EXCEPTION WHEN duplicate_object THEN NULL; END $$;
DO $$ BEGIN
    CREATE TYPE app.patient_status AS ENUM ('lead', 'active', 'in_treatment', 'completed', 'archived');
EXCEPTION WHEN duplicate_object THEN NULL; END $$;
DO $$ BEGIN
    CREATE TYPE app.order_status AS ENUM ('draft', 'submitted', 'in_production', 'shipped', 'delivered', 'cancelled');
EXCEPTION WHEN duplicate_object THEN NULL; END $$;
DO $$ BEGIN
    CREATE TYPE app.arch AS ENUM ('upper', 'lower');
EXCEPTION WHEN duplicate_object THEN NULL; END $$;
DO $$ BEGIN
    CREATE TYPE app.severity AS ENUM ('info', 'warning', 'error');
EXCEPTION WHEN duplicate_object THEN NULL; END $$;

CREATE TABLE IF NOT EXISTS app.offices (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    legacy_id          bigint NOT NULL UNIQUE,
    created_at         timestamptz NOT NULL,
    source_updated_at  timestamptz,
    synced_at          timestamptz NOT NULL DEFAULT now(),
    deleted_at         timestamptz,
    display_name       text NOT NULL,
    address            jsonb NOT NULL,
    phone_e164         text,
    email              text,
    active             boolean NOT NULL
);

CREATE TABLE IF NOT EXISTS app.doctors (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    legacy_id          bigint NOT NULL UNIQUE,
    created_at         timestamptz NOT NULL,
    source_updated_at  timestamptz,
    synced_at          timestamptz NOT NULL DEFAULT now(),
    deleted_at         timestamptz,
    office_id          uuid NOT NULL REFERENCES app.offices(id),
    given_name         text NOT NULL,
    family_name        text NOT NULL,
    email              text,
    phone_e164         text,
    license_number     text,
    specialty          app.specialty NOT NULL,
    active             boolean NOT NULL
);

CREATE TABLE IF NOT EXISTS app.patients (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    legacy_id          bigint NOT NULL UNIQUE,
    created_at         timestamptz NOT NULL,
    source_updated_at  timestamptz,
    synced_at          timestamptz NOT NULL DEFAULT now(),
    deleted_at         timestamptz,
    doctor_id          uuid NOT NULL REFERENCES app.doctors(id),
    given_name         text NOT NULL,
    family_name        text NOT NULL,
    date_of_birth      date,
    sex                app.sex NOT NULL,
    email              text,
    phone_e164         text,
    notes              text,
    status             app.patient_status NOT NULL
);

CREATE TABLE IF NOT EXISTS app.orders (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    legacy_id          bigint NOT NULL UNIQUE,
    created_at         timestamptz NOT NULL,
    source_updated_at  timestamptz,
    synced_at          timestamptz NOT NULL DEFAULT now(),
    deleted_at         timestamptz,
    patient_id         uuid NOT NULL REFERENCES app.patients(id),
    order_number       text NOT NULL UNIQUE,
    status             app.order_status NOT NULL,
    aligner_count      integer CHECK (aligner_count >= 0),
    price_cents        bigint NOT NULL CHECK (price_cents >= 0),
    currency           char(3) NOT NULL,
    arches             text CHECK (arches IN ('upper', 'lower', 'both')),
    is_rush            boolean NOT NULL,
    extra              jsonb NOT NULL,
    submitted_at       timestamptz,
    shipped_at         timestamptz
);

CREATE TABLE IF NOT EXISTS app.jaws (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    legacy_id          bigint NOT NULL UNIQUE,
    created_at         timestamptz NOT NULL,
    source_updated_at  timestamptz,
    synced_at          timestamptz NOT NULL DEFAULT now(),
    deleted_at         timestamptz,
    legacy_patient_id  bigint,
    arch               app.arch NOT NULL,
    teeth              smallint[] NOT NULL,
    scan_url           text
);

CREATE TABLE IF NOT EXISTS app.system_messages (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    legacy_id          bigint NOT NULL UNIQUE,
    created_at         timestamptz NOT NULL,
    source_updated_at  timestamptz,
    synced_at          timestamptz NOT NULL DEFAULT now(),
    deleted_at         timestamptz,
    severity           app.severity NOT NULL,
    code               text NOT NULL,
    body               text NOT NULL,
    context            jsonb NOT NULL
);
