"""What every sandbox account starts with: a school's pipelines, field catalogues and users."""

from sandbox.state import (
    DEFAULT_RESPONSIBLE_USER_ID,
    INCOMING_STATUS_TYPE,
    LOST_STATUS_ID,
    WON_STATUS_ID,
    CustomField,
    EnumOption,
    Pipeline,
    Status,
    User,
)

MAIN_PIPELINE_ID = 1000
PROFTEST_PIPELINE_ID = 10350882
EXPRESS_COURSE_PIPELINE_ID = 6344290


def _pipeline(
    pipeline_id: int,
    name: str,
    sort: int,
    incoming_status_id: int,
    open_statuses: list[tuple[int, str]],
    *,
    is_main: bool = False,
) -> Pipeline:
    statuses = [
        Status(incoming_status_id, "Неразобранное", 10, "#c1c1c1", INCOMING_STATUS_TYPE, False),
        *(
            Status(status_id, status_name, 20 + 10 * index, "#99ccff")
            for index, (status_id, status_name) in enumerate(open_statuses)
        ),
        # amoCRM creates the two closing statuses in every pipeline, with these fixed ids.
        Status(WON_STATUS_ID, "Успешно реализовано", 10000, "#CCFF66", is_editable=False),
        Status(LOST_STATUS_ID, "Закрыто и не реализовано", 11000, "#D5D8DB", is_editable=False),
    ]
    return Pipeline(pipeline_id, name, sort, is_main, tuple(statuses))


def seed_pipelines() -> list[Pipeline]:
    return [
        _pipeline(
            MAIN_PIPELINE_ID,
            "Воронка",
            1,
            1001,
            [(1002, "Первичный контакт"), (1003, "Переговоры"), (1004, "Принимают решение")],
            is_main=True,
        ),
        _pipeline(
            PROFTEST_PIPELINE_ID,
            "Профтест",
            2,
            10350883,
            [(81854578, "Новая заявка"), (81854579, "Консультация")],
        ),
        _pipeline(
            EXPRESS_COURSE_PIPELINE_ID,
            "Экспресс-курс",
            3,
            6344291,
            [(54435014, "Новая"), (54423922, "Kaspi"), (54423923, "Карта"), (54423924, "Менеджер")],
        ),
    ]


def _enums(first_id: int, values: list[str]) -> tuple[EnumOption, ...]:
    return tuple(
        EnumOption(first_id + index, value, (index + 1) * 10) for index, value in enumerate(values)
    )


def _multitext(
    field_id: int, code: str, name: str, sort: int, enums: list[tuple[int, str]]
) -> CustomField:
    options = tuple(
        EnumOption(enum_id, enum_code, (index + 1) * 2)
        for index, (enum_id, enum_code) in enumerate(enums)
    )
    return CustomField(field_id, name, "multitext", sort, code, options)


def _tracking(field_id: int, name: str, sort: int) -> CustomField:
    return CustomField(field_id, name, "tracking_data", sort, name.upper())


# The UTM fields amoCRM creates in every account (the seed account's ids), then one field of
# every type a form may fill.
UTM_FIELD_IDS = {
    "utm_content": 434725,
    "utm_medium": 434727,
    "utm_campaign": 434729,
    "utm_source": 434731,
    "utm_term": 434733,
    "utm_referrer": 434735,
    "fbclid": 434761,
}
PAYMENT_METHOD_FIELD_ID = 600100
COURSE_FIELD_ID = 600200
AGE_FIELD_ID = 600300
CONSENT_FIELD_ID = 600400
CONSULTATION_DATE_FIELD_ID = 600500
FORMAT_FIELD_ID = 600600
INTERESTS_FIELD_ID = 600700
MANAGER_COMMENT_FIELD_ID = 600800
LANDING_PAGE_FIELD_ID = 600900
CITY_FIELD_ID = 700300
LANGUAGE_FIELD_ID = 700400


def seed_lead_fields() -> list[CustomField]:
    utm = [
        _tracking(field_id, name, 100 + index)
        for index, (name, field_id) in enumerate(UTM_FIELD_IDS.items())
    ]
    return [
        *utm,
        CustomField(
            PAYMENT_METHOD_FIELD_ID,
            "Способ оплаты",
            "select",
            510,
            enums=_enums(900101, ["kaspi", "card", "manager"]),
        ),
        CustomField(COURSE_FIELD_ID, "Курс", "text", 520),
        CustomField(AGE_FIELD_ID, "Возраст", "numeric", 530),
        CustomField(CONSENT_FIELD_ID, "Согласие на рассылку", "checkbox", 540),
        CustomField(CONSULTATION_DATE_FIELD_ID, "Дата консультации", "date", 550),
        CustomField(
            FORMAT_FIELD_ID, "Формат", "radio", 560, enums=_enums(900601, ["Онлайн", "Офлайн"])
        ),
        CustomField(
            INTERESTS_FIELD_ID,
            "Интересы",
            "multiselect",
            570,
            enums=_enums(900701, ["Программирование", "Дизайн", "Маркетинг"]),
        ),
        CustomField(MANAGER_COMMENT_FIELD_ID, "Комментарий для менеджера", "textarea", 580),
        CustomField(LANDING_PAGE_FIELD_ID, "Страница заявки", "url", 590),
    ]


def seed_contact_fields() -> list[CustomField]:
    return [
        _multitext(
            264911,
            "PHONE",
            "Телефон",
            4,
            [
                (180001, "WORK"),
                (180003, "WORKDD"),
                (180005, "MOB"),
                (180007, "FAX"),
                (180009, "HOME"),
                (180011, "OTHER"),
            ],
        ),
        _multitext(
            264913, "EMAIL", "Email", 6, [(180013, "WORK"), (180015, "PRIV"), (180017, "OTHER")]
        ),
        CustomField(CITY_FIELD_ID, "Город", "text", 510),
        CustomField(
            LANGUAGE_FIELD_ID,
            "Язык",
            "select",
            520,
            enums=_enums(900401, ["ru-RU", "kk-KZ", "en-US"]),
        ),
    ]


# The account's users: an administrator (amoCRM's default responsible user) and three managers.
MANAGER_IDS = (5001, 5002, 5003)


def seed_users() -> list[User]:
    return [
        User(DEFAULT_RESPONSIBLE_USER_ID, "Администратор", "admin@school.example", is_admin=True),
        User(5001, "Айгуль", "aigul@school.example"),
        User(5002, "Бекзат", "bekzat@school.example"),
        User(5003, "Дина", "dina@school.example"),
    ]
