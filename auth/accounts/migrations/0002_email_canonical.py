"""Accounts get one canonical e-mail address each (see auth.accounts.emails), replacing the
unique index on lower(email), which let Unicode look-alikes (``admın@`` beside ``admin@``) in."""

import logging

from django.db import migrations, models

log = logging.getLogger(__name__)


def canonical(email: str) -> str | None:
    # The rule of auth.accounts.emails at the time of writing, frozen here as migrations must be.
    from email_validator import EmailNotValidError, validate_email

    try:
        parsed = validate_email(email.strip(), check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError:
        return None
    return parsed.ascii_email.lower()


def fill(apps, schema_editor):
    """Oldest account first keeps an address; a row that has no canonical form (a non-ASCII
    local part, now refused) or whose form is taken by an older row gets one that no accepted
    input can produce (``#<id>`` appended), so no lookup can ever reach it or match two rows."""
    User = apps.get_model("accounts", "User")
    seen: set[str] = set()
    for user in User.objects.order_by("created_at", "id").only("id", "email"):
        value = canonical(user.email)
        if value is None or value in seen:
            log.warning(
                "account %s (%r) has no usable canonical e-mail address", user.id, user.email
            )
            value = f"{user.email.lower()}#{user.id}"
        seen.add(value)
        User.objects.filter(pk=user.pk).update(email_canonical=value)


class Migration(migrations.Migration):
    dependencies = [("accounts", "0001_initial")]

    operations = [
        migrations.AddField(
            model_name="user",
            name="email_canonical",
            field=models.CharField(max_length=300, null=True),
        ),
        migrations.RunPython(fill, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="user",
            name="email_canonical",
            field=models.CharField(max_length=300),
        ),
        migrations.RemoveConstraint(model_name="user", name="uq_users_email_lower"),
        migrations.AddConstraint(
            model_name="user",
            constraint=models.UniqueConstraint(
                fields=["email_canonical"], name="uq_users_email_canonical"
            ),
        ),
    ]
