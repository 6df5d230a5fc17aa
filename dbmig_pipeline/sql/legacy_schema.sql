-- Legacy (source) demo schema, exactly MAPPING.md section 1.
-- Only used to build the demo/test source; real deployments bring their own.
CREATE TABLE IF NOT EXISTS public.offices (
    id          serial PRIMARY KEY,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    name        varchar(200) NOT NULL,
    address1    varchar(200),
    address2    varchar(200),
    city        varchar(100),
    state       varchar(50),
    zip         varchar(20),
    country     char(2) NOT NULL DEFAULT 'US',
    phone       varchar(40),
    email       varchar(254),
    is_active   boolean NOT NULL
);
CREATE INDEX IF NOT EXISTS offices_updated_at_id_idx ON public.offices (updated_at, id);

CREATE TABLE IF NOT EXISTS public.doctors (
    id          serial PRIMARY KEY,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    office_id   int NOT NULL REFERENCES public.offices(id),
    first_name  varchar(100) NOT NULL,
    last_name   varchar(100) NOT NULL,
    email       varchar(254),
    phone       varchar(40),
    license_no  varchar(50),
    specialty   varchar(10) NOT NULL,
    is_active   boolean NOT NULL
);
CREATE INDEX IF NOT EXISTS doctors_updated_at_id_idx ON public.doctors (updated_at, id);

CREATE TABLE IF NOT EXISTS public.patients (
    id          serial PRIMARY KEY,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    doctor_id   int NOT NULL REFERENCES public.doctors(id),
    first_name  varchar(100) NOT NULL,
    last_name   varchar(100) NOT NULL,
    birth_date  date,
    gender      char(1),
    email       varchar(254),
    phone       varchar(40),
    status      smallint NOT NULL,
    notes       text
);
CREATE INDEX IF NOT EXISTS patients_updated_at_id_idx ON public.patients (updated_at, id);

CREATE TABLE IF NOT EXISTS public.orders (
    id             serial PRIMARY KEY,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    patient_id     int NOT NULL REFERENCES public.patients(id),
    order_no       varchar(30) NOT NULL UNIQUE,
    status         varchar(20) NOT NULL,
    aligner_count  int,
    price          numeric(10,2) NOT NULL,
    currency       char(3) NOT NULL DEFAULT 'USD',
    details        jsonb NOT NULL DEFAULT '{}',
    submitted_at   timestamptz,
    shipped_at     timestamptz
);
CREATE INDEX IF NOT EXISTS orders_updated_at_id_idx ON public.orders (updated_at, id);

CREATE TABLE IF NOT EXISTS public.jaws (
    id           serial PRIMARY KEY,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    patient_ref  int,
    arch         char(1) NOT NULL,
    teeth        varchar(200),
    scan_url     text
);
CREATE INDEX IF NOT EXISTS jaws_updated_at_id_idx ON public.jaws (updated_at, id);

CREATE TABLE IF NOT EXISTS public.system_messages (
    id          serial PRIMARY KEY,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz,
    severity    varchar(10) NOT NULL,
    code        varchar(50) NOT NULL,
    body        text NOT NULL,
    context     jsonb
);
CREATE INDEX IF NOT EXISTS system_messages_updated_at_id_idx ON public.system_messages (updated_at, id);
