import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='UpstreamFile',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('backend', models.CharField(help_text="sha256 of the API's base URL and key.", max_length=64)),
                ('sha256', models.CharField(help_text='Of the bytes uploaded (the stored attachment file).', max_length=64)),
                ('file_id', models.CharField(help_text="The Files API's id.", max_length=255)),
                ('kind', models.CharField(help_text="The attachment's kind: image, pdf or text.", max_length=8)),
                ('size', models.PositiveBigIntegerField(help_text='Bytes uploaded.')),
                ('uploaded_at', models.DateTimeField(auto_now_add=True)),
                ('owner', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='upstream_files', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'ordering': ['-uploaded_at', '-id'],
                'indexes': [models.Index(fields=['file_id'], name='upstream_file_file_id')],
                'constraints': [models.UniqueConstraint(fields=('owner', 'backend', 'sha256'), name='upstream_file_owner_backend_sha256')],
            },
        ),
    ]
