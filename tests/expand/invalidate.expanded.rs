use cachet::{cached, invalidate};
#[doc(hidden)]
#[allow(clippy::all, clippy::pedantic, non_snake_case, unused_variables)]
pub fn __cachet_key_user_permissions(user_id: i64) -> ::cachet::__private::CallKey {
    #[allow(unused_variables)]
    let user_id = &user_id;
    ::cachet::__private::CallKey {
        cache: ::cachet::__private::cache(),
        key: {
            #[allow(unused_imports)]
            use ::cachet::__private::{PartDisplay as _, PartFast as _};
            let mut __cachet_rendered = ::cachet::__private::String::with_capacity(
                37usize,
            );
            __cachet_rendered.push_str("user_permissions:");
            (&::cachet::__private::Part(&(user_id))).push_to(&mut __cachet_rendered);
            __cachet_rendered
        },
        scope: ::cachet::__private::scope(
            ::cachet::__private::Option::None,
            ::alloc::vec::Vec::new(),
        ),
    }
}
pub async fn user_permissions(user_id: i64) -> Vec<String> {
    let __cachet_call_key: ::cachet::__private::CallKey = {
        #[allow(unused_variables)]
        let user_id = &user_id;
        ::cachet::__private::CallKey {
            cache: ::cachet::__private::cache(),
            key: {
                #[allow(unused_imports)]
                use ::cachet::__private::{PartDisplay as _, PartFast as _};
                let mut __cachet_rendered = ::cachet::__private::String::with_capacity(
                    37usize,
                );
                __cachet_rendered.push_str("user_permissions:");
                (&::cachet::__private::Part(&(user_id))).push_to(&mut __cachet_rendered);
                __cachet_rendered
            },
            scope: ::cachet::__private::scope(
                ::cachet::__private::Option::None,
                ::alloc::vec::Vec::new(),
            ),
        }
    };
    ::cachet::__private::call(
            __cachet_call_key,
            ::cachet::__private::plan(
                ::cachet::__private::Timeout::Default,
                ::cachet::__private::Option::None,
            ),
            |_| false,
            async move {
                #[allow(
                    unreachable_code,
                    clippy::diverging_sub_expression,
                    clippy::empty_loop,
                    clippy::let_unit_value,
                    clippy::needless_return,
                    clippy::unreachable
                )]
                if false {
                    let __cachet_fake_return: Vec<String> = loop {};
                    return __cachet_fake_return;
                }
                ::alloc::boxed::box_assume_init_into_vec_unsafe(
                    ::alloc::intrinsics::write_box_via_move(
                        ::alloc::boxed::Box::new_uninit(),
                        [user_id.to_string()],
                    ),
                )
            },
            ::cachet::__private::pick_value(),
        )
        .await
}
pub async fn update(user_id: i64) {
    let _ = ::cachet::__private::invalidate_key(
            __cachet_key_user_permissions(user_id),
            ::cachet::__private::Option::None,
        )
        .await;
    let _ = ::cachet::__private::invalidate_namespace(
            ::cachet::__private::cache_or_global(::cachet::__private::Option::None),
            "product",
        )
        .await;
    let _ = ::cachet::__private::invalidate_tag(
            ::cachet::__private::cache_or_global(::cachet::__private::Option::None),
            ::alloc::__export::must_use({
                ::alloc::fmt::format(format_args!("user:{0}", user_id))
            }),
        )
        .await;
}
