"""Settings shared by every environment. One env object; thin overrides per environment."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import environ

from config import services

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()
if (BASE_DIR / ".env").exists():
    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

SECRET_KEY = env("SECRET_KEY", default="")
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = [origin for origin in env.list("CSRF_TRUSTED_ORIGINS", default=[]) if origin]
SITE_NAME = env("SITE_NAME", default="Parley")
# Reverse proxies in front of Daphne (addresses or CIDRs, comma-separated). Only requests from
# them may name the client in X-Forwarded-For / X-Forwarded-Proto (common/proxy.py); login
# limits count by that client address. Empty: Daphne faces the clients, the headers are ignored.
PARLEY_TRUSTED_PROXIES = [value for value in env.list("PARLEY_TRUSTED_PROXIES", default=[]) if value.strip()]
PARLEY_TRUSTED_PROXY_NETWORKS = tuple(ipaddress.ip_network(value.strip(), strict=False)
                                      for value in PARLEY_TRUSTED_PROXIES)

INSTALLED_APPS = [
    "daphne",
    "config.admin_site.ParleyAdminConfig",  # django.contrib.admin behind allauth and TOTP
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "channels",
    "rest_framework",
    "drf_spectacular",
    "django_celery_beat",
    "django_prometheus",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "common",
    "accounts",
    "onboarding",
    "billing",
    "chat",
    "knowledge",
    "inference",
    "arena",
    "evaluation",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "inference.middleware.CancelJobsOnDisconnectMiddleware",
    # Outside every other sync middleware, so it sees the 500 an exception anywhere below becomes.
    "onboarding.middleware.RequestCountMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "common.csp.ContentSecurityPolicyMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

# Content Security Policy (common/csp.py; the shape of Django 6.0's setting). Scripts only from
# this site's own files, no inline ones; images from this site and data: URIs (allauth's TOTP QR
# code); fetches, WebSockets and form posts only to this site. Inline *styles* stay allowed
# (Django admin and Swagger UI set them): a style can't run code, and img-src/font-src/connect-src
# already stop CSS from fetching anything off-site. Stripe's hosts are added in Stripe mode only.
SECURE_CSP = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'", "'unsafe-inline'"],
    "img-src": ["'self'", "data:"],
    "font-src": ["'self'"],
    "connect-src": ["'self'"],
    "media-src": ["'self'", "blob:"],
    "worker-src": ["'self'"],
    "frame-src": ["'self'"],
    "object-src": ["'none'"],
    "base-uri": ["'self'"],
    "form-action": ["'self'"],
    "frame-ancestors": ["'none'"],
}

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "common.context_processors.site",
                "onboarding.context_processors.onboarding",
            ],
        },
    },
]

# --- State: PostgreSQL (+pgvector) and Redis --------------------------------------------
# With no DATABASE_URL / REDIS_URL, use the embedded servers under var/ (config/services.py
# starts them; manage.py and `make` call it before anything connects).
if env("DATABASE_URL", default=""):
    DATABASES = {"default": env.db("DATABASE_URL")}
else:
    _pg = services.postgres_info()
    DATABASES = {
        "default": _pg.database_settings()
        if _pg
        else {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": services.PG_DATABASE,
            "USER": services.PG_USER,
            "HOST": str(services.PG_DIR),
        }
    }
# The web process (Daphne) keeps a pool of connections (psycopg_pool; config/asgi.py turns it on). Under
# ASGI each request runs its sync code (middleware, DRF views) in a thread of its own, so a connection kept
# per thread (CONN_MAX_AGE) died with the request: every API request opened a new PostgreSQL backend (a
# fork and an authentication, ~5 ms, more than all of its queries). A pooled connection goes back to the
# pool when the request ends (Django closes it on request_finished) and the next request's thread takes it
# at once. Workers and commands keep a connection per thread for a minute instead: their threads live long,
# and a pool must not cross a prefork worker's fork. PARLEY_DB_POOL_MAX bounds the web process's
# connections (threads that hold one between requests count too); beyond it a request waits for one.
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if env.bool("PARLEY_DB_POOL", default=False):
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # required with a pool: "closing" returns the connection to it
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": env.int("PARLEY_DB_POOL_MIN", default=2),
        "max_size": env.int("PARLEY_DB_POOL_MAX", default=50),
        "timeout": env.float("PARLEY_DB_POOL_TIMEOUT", default=20.0),
    }
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
# PARLEY_TEST_DB_NAME / PARLEY_TEST_REDIS_DB let two test runs share the embedded services.
DATABASES["default"].setdefault("TEST", {})["NAME"] = env("PARLEY_TEST_DB_NAME", default="parley_test")

_embedded_redis = services.embedded_urls().get("REDIS_URL", "redis://127.0.0.1:6379/0")
REDIS_URL = env("REDIS_URL", default=_embedded_redis)

CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}

def _channel_host(url: str) -> dict:
    from redis.asyncio.retry import Retry
    from redis.backoff import ExponentialBackoff

    # redis-py 8 times reads out after 5 s by default, exactly channels_redis's blocking-pop
    # timeout, so an idle socket would fail every 5 s; give reads more room than that.
    # Pooled asyncio connections retry nothing by default: after a Redis restart (or a managed
    # Redis closing idle connections) the first command on each stale connection failed, which
    # failed a chat turn in Daphne and the worker's publisher (tests/test_failover.py). Retrying
    # reconnects; a command lost exactly between execution and reply may run twice (a delta
    # delivered twice), which is rarer and milder than a failed turn.
    return {"address": url, "socket_timeout": 30, "socket_connect_timeout": 5,
            "retry": Retry(ExponentialBackoff(cap=2, base=0.1), 4), "health_check_interval": 15}


CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        # Streams send up to ~70 messages a second; the default capacity (100) would drop them.
        "CONFIG": {"hosts": [_channel_host(REDIS_URL)], "prefix": "parley:channels", "capacity": 2000},
    }
}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# /metrics, and the detail of /readyz, answer staff and `Authorization: Bearer <this token>` only.
PARLEY_METRICS_TOKEN = env("PARLEY_METRICS_TOKEN", default="")

# --- Auth ------------------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "app_home"
ACCOUNT_LOGOUT_REDIRECT_URL = "landing"

ACCOUNT_ADAPTER = "accounts.adapters.AccountAdapter"
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
ACCOUNT_UNIQUE_EMAIL = True
# The verification link confirms with one click and, in the browser that signed up, logs the
# user in; they land on the welcome screen with the tour offered.
ACCOUNT_CONFIRM_EMAIL_ON_GET = True
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
ACCOUNT_EMAIL_CONFIRMATION_AUTHENTICATED_REDIRECT_URL = "app_home"
ACCOUNT_SIGNUP_FORM_CLASS = "accounts.profile_forms.SignupNameForm"
ACCOUNT_EMAIL_SUBJECT_PREFIX = f"[{SITE_NAME}] "
# Failed log-ins: 10 a minute per client address, and 5 in 5 minutes per account *from one
# address* (the adapter keys it by both), then a doubling wait (accounts/login_limits.py). The
# client address is REMOTE_ADDR, which common/proxy.py sets from X-Forwarded-For when the
# request came through PARLEY_TRUSTED_PROXIES; allauth must not read that header a second time.
ACCOUNT_RATE_LIMITS = {"login_failed": "10/m/ip,5/5m/key", "signup": "20/m/ip"}
ALLAUTH_TRUSTED_PROXY_COUNT = 0
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = SITE_NAME

EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="Parley <noreply@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# --- I18N / static ---------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "var" / "static"
STATICFILES_DIRS = [
    BASE_DIR / "static",
    # Front-end packages come from npm (package.json); only the dist folders are served.
    ("vendor/swagger-ui-dist", BASE_DIR / "node_modules" / "swagger-ui-dist"),
    ("vendor/marked", BASE_DIR / "node_modules" / "marked" / "lib"),
    ("vendor/dompurify", BASE_DIR / "node_modules" / "dompurify" / "dist"),
    ("vendor/chart.js", BASE_DIR / "node_modules" / "chart.js" / "dist"),
    # Lucide's SVG icons ({% icon %} in common/templatetags/icons.py inlines them).
    ("vendor/lucide", BASE_DIR / "node_modules" / "lucide-static" / "icons"),
    # Noto Emoji (OFL, outline glyphs) for assistants' emoji on machines without an emoji font (headless
    # Chromium, many Linux desktops drew boxes); split by unicode-range, so a page loads only what it shows.
    ("vendor/noto-emoji", BASE_DIR / "node_modules" / "@fontsource" / "noto-emoji"),
    ("vendor/driver.js", BASE_DIR / "node_modules" / "driver.js" / "dist"),
]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
MEDIA_ROOT = env("MEDIA_ROOT", default="") or BASE_DIR / "var" / "media"
MEDIA_URL = "/media/"

# --- API -------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "EXCEPTION_HANDLER": "common.exceptions.api_exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Parley API",
    "DESCRIPTION": "Parley's REST API: knowledge, usage and billing status, and an "
    "OpenAI-compatible /v1.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "/static/vendor/swagger-ui-dist",
    "SWAGGER_UI_FAVICON_HREF": "/static/vendor/swagger-ui-dist/favicon-32x32.png",
    "LICENSE": {"name": "GPL-3.0-or-later"},
}

# --- Celery ----------------------------------------------------------------------------
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_EXPIRES = 3600
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    "inference.tasks.*": {"queue": "gpu"},
    "billing.tasks.*": {"queue": "billing"},
}
# A task is acknowledged only after it ran, and requeued if its worker dies mid-task, so a
# crash never silently drops work; tasks are written to be safe to run twice (STYLE rule 5).
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=300)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=360)
# With acks_late, prefetching more than one long task per process would park work behind a
# busy worker; the gpu worker is started with --prefetch-multiplier=1 as well (Procfile).
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = TIME_ZONE

# --- Logging ---------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # Celery logs each task's return value at INFO ("succeeded in 1.2s: {...}"): for inference
        # tasks that is the reply, the transcript or the audio. Prompts and replies stay out of logs.
        "celery.app.trace": {"level": "WARNING"},
    },
}

# --- Inference -------------------------------------------------------------------------
# Models a `gpu` worker loads at start (names from admin → Models), comma-separated.
PARLEY_WORKER_MODELS = env.list(
    "PARLEY_WORKER_MODELS",
    default=["qwen2.5-coder-0.5b", "whisper-tiny.en", "piper-en-us-joe", "all-minilm-l6-v2"],
)
# Plans (billing.Plan rows, edited in admin) set each user's limits: a dotted path to
# `f(*, user) -> entitlements`. Empty, or PARLEY_PLANS_ENFORCED=false (a private bench stack), gives every
# user the PARLEY_USER_* limits below and every model.
PARLEY_ENTITLEMENTS = env("PARLEY_ENTITLEMENTS", default="billing.selectors.entitlements_for_user")
PARLEY_PLANS_ENFORCED = env.bool("PARLEY_PLANS_ENFORCED", default=True)
PARLEY_USER_RPM = env.int("PARLEY_USER_RPM", default=120)
PARLEY_USER_TOKENS_PER_DAY = env.int("PARLEY_USER_TOKENS_PER_DAY", default=500_000)
# Speech budgets per user: seconds of audio transcribed, and characters spoken, per day.
PARLEY_USER_AUDIO_SECONDS_PER_DAY = env.int("PARLEY_USER_AUDIO_SECONDS_PER_DAY", default=3600)
PARLEY_USER_SPEECH_CHARS_PER_DAY = env.int("PARLEY_USER_SPEECH_CHARS_PER_DAY", default=200_000)
PARLEY_USER_MAX_TOKENS_PER_REPLY = env.int("PARLEY_USER_MAX_TOKENS_PER_REPLY", default=4096)
# A background install converts a model to CTranslate2 only with at least this much RAM (GB): the 1.5B
# model's conversion peaks near 10 GB. On a CPU with llama-server no conversion is needed at all.
PARLEY_CONVERT_MIN_RAM_GB = env.float("PARLEY_CONVERT_MIN_RAM_GB", default=10.0)
# What an hour of a model worker costs you (USD; a GPU hour on GPU hosts, a CPU hour otherwise). Savings
# spread it over the time requests took, and compare with what the reference APIs would have charged.
PARLEY_COMPUTE_COST_PER_HOUR = env.float("PARLEY_COMPUTE_COST_PER_HOUR", default=0.10)
# How long a job may wait for a worker to pick it up before the next model is tried. Waiting
# for a free slot on a worker that has it is not a failure: the client sees `queued` instead.
PARLEY_START_TIMEOUT = env.float("PARLEY_START_TIMEOUT", default=120.0)
# When no live worker holds a model, send its jobs to the shared `gpu` queue, where any gpu
# worker loads it on first use. Off: such a request fails over to the next model at once.
PARLEY_LAZY_LOAD = env.bool("PARLEY_LAZY_LOAD", default=True)
# Who may use which model: a dotted path to `f(*, caller, specs) -> specs`. The default reads each model's
# and route's access rule (plans, teams, staff); inference.access.access_any_enabled opens every model.
PARLEY_MODEL_ACCESS_POLICY = env("PARLEY_MODEL_ACCESS_POLICY", default="inference.access.access_by_plan")
PARLEY_REQUEST_TIMEOUT = env.float("PARLEY_REQUEST_TIMEOUT", default=600.0)
PARLEY_MAX_AUDIO_BYTES = env.int("PARLEY_MAX_AUDIO_BYTES", default=25 * 1024 * 1024)
PARLEY_MAX_AUDIO_SECONDS = env.int("PARLEY_MAX_AUDIO_SECONDS", default=600)
PARLEY_MAX_SPEECH_CHARS = env.int("PARLEY_MAX_SPEECH_CHARS", default=4096)
PARLEY_MAX_EMBED_INPUTS = env.int("PARLEY_MAX_EMBED_INPUTS", default=256)
# Largest JSON body /v1 accepts (413 in OpenAI's error shape above it).
PARLEY_MAX_V1_JSON_BYTES = env.int("PARLEY_MAX_V1_JSON_BYTES", default=8 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = PARLEY_MAX_AUDIO_BYTES + 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = PARLEY_MAX_AUDIO_BYTES + 1024 * 1024
# An OpenAI-compatible server that `openai_upstream` models forward to (vLLM, Ollama, ...).
PARLEY_UPSTREAM_BASE_URL = env("PARLEY_UPSTREAM_BASE_URL", default="")

# --- Chat ------------------------------------------------------------------------------
# Tokens of earlier turns sent with each message; older turns are left out (and noted).
PARLEY_CHAT_CONTEXT_TOKENS = env.int("PARLEY_CHAT_CONTEXT_TOKENS", default=3000)
# Queue the model tasks go to (tests point a dedicated worker at its own queue).
PARLEY_GPU_QUEUE = env("PARLEY_GPU_QUEUE", default="gpu")
# Voice: the longest utterance and the largest binary frame accepted.
PARLEY_VOICE_MAX_SECONDS = env.int("PARLEY_VOICE_MAX_SECONDS", default=30)
PARLEY_VOICE_MAX_FRAME_BYTES = env.int("PARLEY_VOICE_MAX_FRAME_BYTES", default=32000)
PARLEY_VOICE_STT_MODEL = env("PARLEY_VOICE_STT_MODEL", default="stt-default")
PARLEY_VOICE_TTS_MODEL = env("PARLEY_VOICE_TTS_MODEL", default="tts-default")

# --- Billing: Stripe through dj-stripe ---------------------------------------------------
# Three modes (billing/stripe_api.py): `live` (an sk_live_ key), `test` (an sk_test_ key against
# Stripe's test mode, card entry through Stripe Elements) and `local` (the default with no key, or
# whenever STRIPE_API_BASE is set): the localstripe stand-in on loopback, started by `make run`.
INSTALLED_APPS += ["djstripe"]  # appended so the list above stays as it is
STRIPE_SECRET_KEY = env("STRIPE_SECRET_KEY", default="")
STRIPE_PUBLISHABLE_KEY = env("STRIPE_PUBLISHABLE_KEY", default="")
STRIPE_LOCAL_PORT = int(env("STRIPE_LOCAL_PORT", default="") or 8420)
STRIPE_API_BASE = env("STRIPE_API_BASE", default="")
if STRIPE_API_BASE or not STRIPE_SECRET_KEY:
    BILLING_MODE = "local"
    STRIPE_API_BASE = STRIPE_API_BASE or f"http://127.0.0.1:{STRIPE_LOCAL_PORT}"
    # localstripe accepts any sk_ key; dj-stripe wants sk_test_ and 24+ alphanumerics.
    STRIPE_SECRET_KEY = STRIPE_SECRET_KEY or "sk_test_localstripe0000000000000000"
    STRIPE_PUBLISHABLE_KEY = STRIPE_PUBLISHABLE_KEY or "pk_test_localstripe0000000000000000"
else:
    BILLING_MODE = "live" if STRIPE_SECRET_KEY.startswith("sk_live_") else "test"
STRIPE_LIVE_MODE = BILLING_MODE == "live"
STRIPE_LIVE_SECRET_KEY = STRIPE_SECRET_KEY if STRIPE_LIVE_MODE else ""
STRIPE_TEST_SECRET_KEY = "" if STRIPE_LIVE_MODE else STRIPE_SECRET_KEY
DJSTRIPE_FOREIGN_KEY_TO_FIELD = "id"
DJSTRIPE_WEBHOOK_VALIDATION = "verify_signature"
# Billing's clock can be moved (billing/clock.py) for tests and local demos; never in production.
_clock_adjustable = env("BILLING_CLOCK_ADJUSTABLE", default="")
BILLING_CLOCK_ADJUSTABLE = (
    _clock_adjustable.lower() in ("1", "true", "yes") if _clock_adjustable else BILLING_MODE == "local"
)
# Absolute links in billing emails (sent from workers, where there is no request).
PARLEY_BASE_URL = env("PARLEY_BASE_URL", default="") or f"http://localhost:{env('PARLEY_PORT', default='8000')}"

# --- Operations ---
# Where `manage.py backup`/`restore` look for pg_dump and pg_restore after the embedded server's own
# binaries (they must be at least the server's major version); empty = the PATH.
PARLEY_PG_BIN_DIR = env("PARLEY_PG_BIN_DIR", default="")

# --- Knowledge -------------------------------------------------------------------------
# Ingest runs on the `default` queue (named here so a change of default never moves it).
CELERY_TASK_ROUTES["knowledge.tasks.*"] = {"queue": "default"}
# Largest document accepted; bigger files become a `failed` document without being read.
PARLEY_KNOWLEDGE_MAX_FILE_BYTES = env.int("PARLEY_KNOWLEDGE_MAX_FILE_BYTES", default=50 * 1024 * 1024)
# A DOCX (a ZIP archive) may expand to at most this much before it is opened (zip bombs).
PARLEY_KNOWLEDGE_MAX_UNPACKED_BYTES = env.int("PARLEY_KNOWLEDGE_MAX_UNPACKED_BYTES", default=200 * 1024 * 1024)
# Passages embedded per call while ingesting.
PARLEY_KNOWLEDGE_EMBED_BATCH = env.int("PARLEY_KNOWLEDGE_EMBED_BATCH", default=64)
# HNSW candidate list size per search; larger = better recall, slower queries.
PARLEY_KNOWLEDGE_EF_SEARCH = env.int("PARLEY_KNOWLEDGE_EF_SEARCH", default=100)
# Documents added by URL are fetched by the worker; loopback and private addresses are refused
# unless this is set (they would let users read the operator's internal network).
PARLEY_KNOWLEDGE_FETCH_PRIVATE_URLS = env.bool("PARLEY_KNOWLEDGE_FETCH_PRIVATE_URLS", default=False)
# Or only these networks (CIDRs, comma-separated), e.g. an intranet wiki's; everything else stays public-only.
PARLEY_KNOWLEDGE_FETCH_ALLOWED_NETWORKS = env.list("PARLEY_KNOWLEDGE_FETCH_ALLOWED_NETWORKS", default=[])
# Seconds for the whole fetch, redirects included (at most 5 of them, each hop's address checked).
PARLEY_KNOWLEDGE_FETCH_TIMEOUT = env.float("PARLEY_KNOWLEDGE_FETCH_TIMEOUT", default=20.0)
# The keyword leg ranks at most this many matching passages per query (see knowledge/selectors/search.py).
PARLEY_KNOWLEDGE_TEXT_MATCH_LIMIT = env.int("PARLEY_KNOWLEDGE_TEXT_MATCH_LIMIT", default=1000)
# The relevance floor: passages farther than this cosine distance from the query are not returned
# unless they contain every word of it (or half of its words and two of them). 0.70 is tuned for
# all-MiniLM-L6-v2 (see the README); 2 turns it off.
PARLEY_KNOWLEDGE_MAX_DISTANCE = env.float("PARLEY_KNOWLEDGE_MAX_DISTANCE", default=0.70)

# --- Assistants' built-in tools (chat/tools.py) -----------------------------------------
# webhook_notify posts only to URLs under these prefixes (scheme, host and port must match exactly and
# the path must start with the prefix's path), comma-separated; empty: the tool refuses every call.
PARLEY_WEBHOOK_ALLOWED_URLS = env.list("PARLEY_WEBHOOK_ALLOWED_URLS", default=[])
# The HMAC-SHA256 key of the X-Parley-Signature header (the receiver checks it); required once URLs are allowed.
PARLEY_WEBHOOK_SECRET = env("PARLEY_WEBHOOK_SECRET", default="")
# Seconds for the whole POST (redirects are never followed).
PARLEY_WEBHOOK_TIMEOUT = env.float("PARLEY_WEBHOOK_TIMEOUT", default=5.0)
# The URL ingest's SSRF rule applies: only public addresses, unless in these networks (CIDRs), e.g. an
# intranet ticketing system's.
PARLEY_WEBHOOK_ALLOWED_NETWORKS = env.list("PARLEY_WEBHOOK_ALLOWED_NETWORKS", default=[])
# send_email: at most this many messages per user per hour (to themself or their team members only).
PARLEY_TOOL_EMAILS_PER_HOUR = env.int("PARLEY_TOOL_EMAILS_PER_HOUR", default=10)

# --- Onboarding ------------------------------------------------------------------------
# Path of the S-7 evaluation page, tour step 3 ("Explore the S-7 evaluation"). Empty leaves the step out.
PARLEY_TOUR_EVALUATION_URL = env("PARLEY_TOUR_EVALUATION_URL", default="/app/evaluation/")
# The staff funnel counts a milestone only if it happened within this many days of sign-up
# (the page can override it per view).
PARLEY_ONBOARDING_FUNNEL_WINDOW_DAYS = env.int("PARLEY_ONBOARDING_FUNNEL_WINDOW_DAYS", default=30)

# --- Product analytics (onboarding/; /privacy/ is generated from these) ------------------
# Bump when the privacy policy changes: consent given under an older version is asked again.
PARLEY_ANALYTICS_POLICY_VERSION = env("PARLEY_ANALYTICS_POLICY_VERSION", default="2026-12")
# Events older than this many days are deleted by beat, in batches. Consent records are kept.
PARLEY_ANALYTICS_RETENTION_DAYS = env.int("PARLEY_ANALYTICS_RETENTION_DAYS", default=395)
# A MaxMind-format country database (GeoLite2-Country.mmdb); empty: no country is recorded.
PARLEY_ANALYTICS_GEOIP_PATH = env("PARLEY_ANALYTICS_GEOIP_PATH", default="")
# POST /api/analytics/events: events per request, bytes per request, requests per minute per visitor.
PARLEY_ANALYTICS_MAX_BATCH = env.int("PARLEY_ANALYTICS_MAX_BATCH", default=50)
PARLEY_ANALYTICS_MAX_BODY_BYTES = env.int("PARLEY_ANALYTICS_MAX_BODY_BYTES", default=32768)
PARLEY_ANALYTICS_RATE_PER_MINUTE = env.int("PARLEY_ANALYTICS_RATE_PER_MINUTE", default=120)
# Alerts (hourly): a spike when the last hour's events exceed FACTOR × the same hour's mean over the
# previous 4 weeks and at least MIN_EVENTS; an error-rate alert when the 5xx (or failed reply) share
# exceeds ERROR_FACTOR × its baseline and at least ERROR_MIN_RATE, over at least ERROR_MIN_REQUESTS.
PARLEY_ANALYTICS_SPIKE_FACTOR = env.float("PARLEY_ANALYTICS_SPIKE_FACTOR", default=3.0)
PARLEY_ANALYTICS_SPIKE_MIN_EVENTS = env.int("PARLEY_ANALYTICS_SPIKE_MIN_EVENTS", default=100)
PARLEY_ANALYTICS_ERROR_FACTOR = env.float("PARLEY_ANALYTICS_ERROR_FACTOR", default=2.0)
PARLEY_ANALYTICS_ERROR_MIN_RATE = env.float("PARLEY_ANALYTICS_ERROR_MIN_RATE", default=0.05)
PARLEY_ANALYTICS_ERROR_MIN_REQUESTS = env.int("PARLEY_ANALYTICS_ERROR_MIN_REQUESTS", default=50)
# Optional: also send each consented event, server-side, to a self-hosted Umami (its /api/send).
UMAMI_URL = env("UMAMI_URL", default="")
UMAMI_WEBSITE_ID = env("UMAMI_WEBSITE_ID", default="")
