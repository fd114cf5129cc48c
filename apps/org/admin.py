"""Admin for people, regions and the team tree."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import forms as auth_forms
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from apps.org.models import Region, Team, User


@admin.register(Region)
class RegionAdmin(admin.ModelAdmin):
    list_display = ("code", "name")
    search_fields = ("code", "name")


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ("name", "kind", "parent", "manager", "region", "is_active")
    list_filter = ("kind", "is_active", "region")
    list_select_related = ("parent", "manager", "region")
    search_fields = ("name", "manager__username", "manager__last_name")
    autocomplete_fields = ("parent", "manager", "region")


class UserCreationForm(auth_forms.AdminUserCreationForm):
    class Meta(auth_forms.AdminUserCreationForm.Meta):
        model = User
        fields = ("username", "email")


class UserChangeForm(auth_forms.UserChangeForm):
    class Meta(auth_forms.UserChangeForm.Meta):
        model = User
        fields = "__all__"


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    form = UserChangeForm
    add_form = UserCreationForm
    list_display = (
        "username",
        "first_name",
        "last_name",
        "email",
        "role",
        "title",
        "team",
        "is_active",
        "is_staff",
    )
    list_filter = ("role", "is_active", "is_staff", "is_superuser", "team")
    list_select_related = ("team",)
    search_fields = ("username", "first_name", "last_name", "email", "title", "team__name")
    autocomplete_fields = ("team",)
    readonly_fields = ("last_login", "date_joined")
    fieldsets = (
        *BaseUserAdmin.fieldsets,
        ("Sales organisation", {"fields": ("role", "title", "team", "hired_on")}),
    )
    add_fieldsets = (
        (
            None,
            {
                "classes": ("wide",),
                "fields": ("username", "email", "usable_password", "password1", "password2"),
            },
        ),
        ("Sales organisation", {"fields": ("first_name", "last_name", "role", "title", "team")}),
    )
